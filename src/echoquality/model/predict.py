"""Scoring clips with a loaded network: device choice, inference layout, one batch-scoring function.

``score_batch`` is the single forward pass + sigmoid used by inference, evaluation and the
training loop's validation/test passes, so that all three score a clip the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from echoquality.model.networks import TinyR2Plus1D


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a clear error."""
    name = str(device).strip().lower()
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")


def prepare_for_inference(model: nn.Module, device: str | torch.device) -> nn.Module:
    """Move to *device*, eval mode; channels_last_3d for the full network on CPU (~20% faster forward).

    The tiny network is faster in the default layout, so it keeps it.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    use_cl = device.type == "cpu" and not isinstance(model, TinyR2Plus1D)
    if use_cl:
        model = model.to(memory_format=torch.channels_last_3d)
    model.echo_channels_last = use_cl  # read by _as_batch
    return model


def _as_batch(
    clips: torch.Tensor | np.ndarray, model: nn.Module, device: torch.device | None
) -> torch.Tensor:
    """A (N, 3, T, H, W) tensor on the model's device and dtype (a single clip gets a batch axis)."""
    batch = torch.as_tensor(clips)
    if batch.ndim == 4:
        batch = batch.unsqueeze(0)
    param = next(model.parameters())
    batch = batch.to(device=device or param.device, dtype=param.dtype, non_blocking=True)
    if getattr(model, "echo_channels_last", False):
        batch = batch.contiguous(memory_format=torch.channels_last_3d)
    return batch


@torch.no_grad()
def batch_logits(
    model: nn.Module, clips: torch.Tensor | np.ndarray, device: str | torch.device | None = None
) -> torch.Tensor:
    """The model's logit per clip of a (N, 3, T, H, W) batch: float32, shape (N,), on *device*.

    No gradients; the mode (train/eval) is the caller's. *device* defaults to the model's.
    """
    batch = _as_batch(clips, model, torch.device(device) if device is not None else None)
    # reshape, never squeeze: batches of one stay 1-D
    return model(batch).reshape(batch.shape[0], -1)[:, 0].float()


def score_batch(
    model: nn.Module, clips: torch.Tensor | np.ndarray, device: str | torch.device | None = None
) -> np.ndarray:
    """Quality score (sigmoid of the logit) per clip of a (N, 3, T, H, W) batch, float64 shape (N,)."""
    return torch.sigmoid(batch_logits(model, clips, device)).cpu().numpy().astype(np.float64)
