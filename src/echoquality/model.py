"""The quality network: building it, checking weight files, loading it and scoring clips.

Two architectures share one layout of named children (``stem``, ``layer1``..``layer4``, ``avgpool``,
``fc``) so that training (which unfreezes layers by name) and Grad-CAM (which hooks ``layer4``) work on
both:

- ``r2plus1d_18``: torchvision's R(2+1)D-18 with a single-logit head, the reference quality model
  (31.3 M parameters). Never downloads anything (``weights=None``).
- ``tiny``: a ~0.3 M-parameter (2+1)D residual network for tests and CPU demos (~50x faster).

A weights file is a plain ``state_dict``; checkpoints wrapping it (``{"model_state_dict": ...}``,
``{"state_dict": ...}``) and ``module.`` prefixes (DataParallel) are accepted. Every problem with a file
raises :class:`WeightsError` with a message that says what is wrong and what to do.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

ARCHITECTURES = ("r2plus1d_18", "tiny")
DEFAULT_WEIGHTS_PATH = Path("weights/video_quality_model.pt")
WEIGHTS_ENV_VAR = "ECHOQUALITY_WEIGHTS"
REFERENCE_WEIGHTS_SHA256 = "7c9cff73ed76afed0bdbc9351c4657d26d515e828233a1ae4f263b15926d5e58"
REFERENCE_WEIGHTS_SIZE = 125_382_818

# Keys under which training checkpoints commonly nest the model's state_dict.
_CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")


class WeightsError(Exception):
    """A weights file is missing, unreadable or does not fit the quality network."""


# --------------------------------------------------------------------------- tiny architecture


class _Conv2Plus1D(nn.Sequential):
    """A factorised 3D convolution: spatial 1xkxk, BN+ReLU, then temporal kx1x1 (as in R(2+1)D)."""

    def __init__(self, cin: int, cout: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class _TinyBlock(nn.Module):
    """Residual block of two (2+1)D convolutions; a 1x1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = max(8, cout // 2)
        self.conv1 = nn.Sequential(_Conv2Plus1D(cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(True))
        self.conv2 = nn.Sequential(_Conv2Plus1D(cout, cout, mid), nn.BatchNorm3d(cout))
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class TinyR2Plus1D(nn.Module):
    """A small (2+1)D ResNet with the same child names as torchvision's VideoResNet."""

    WIDTHS = (24, 48, 96, 128)

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        w = self.WIDTHS
        # Aggressive spatial downsampling in the stem keeps a 16x112x112 clip at ~0.02 s on CPU.
        self.stem = nn.Sequential(
            nn.Conv3d(3, 12, (1, 7, 7), stride=(1, 4, 4), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(12),
            nn.ReLU(inplace=True),
            nn.Conv3d(12, w[0], (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(w[0]),
            nn.ReLU(inplace=True),
        )
        self.layer1 = _TinyBlock(w[0], w[0], 1)
        self.layer2 = _TinyBlock(w[0], w[1], 2)
        self.layer3 = _TinyBlock(w[1], w[2], 2)
        self.layer4 = _TinyBlock(w[2], w[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------- building


def build_model(architecture: str = "r2plus1d_18") -> nn.Module:
    """A freshly initialised quality network (single-logit head); never downloads weights."""
    if architecture == "r2plus1d_18":
        from torchvision.models.video import r2plus1d_18

        return r2plus1d_18(weights=None, num_classes=1)
    if architecture == "tiny":
        return TinyR2Plus1D(num_classes=1)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")


_SHAPES_CACHE: dict[str, dict[str, tuple[int, ...]]] = {}


def expected_shapes(architecture: str) -> dict[str, tuple[int, ...]]:
    """Parameter/buffer name -> shape of *architecture* (built on the meta device: no memory, fast)."""
    if architecture not in _SHAPES_CACHE:
        with torch.device("meta"):
            model = build_model(architecture)
        _SHAPES_CACHE[architecture] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _SHAPES_CACHE[architecture]


def _strip_prefixes(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Drop DataParallel/compile prefixes (``module.``, ``_orig_mod.``) when every key carries them."""
    out = dict(state_dict)
    for prefix in ("module.", "_orig_mod."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def architecture_of(state_dict: Mapping[str, object]) -> str:
    """Which architecture a state_dict belongs to ("r2plus1d_18" or "tiny"), from its keys and shapes."""
    sd = _strip_prefixes(state_dict)
    best, best_score = None, 0
    for arch in ARCHITECTURES:
        shapes = expected_shapes(arch)
        common = set(sd) & set(shapes)
        # Keys count once, matching shapes once more: a Kinetics head still points at r2plus1d_18.
        score = len(common) + sum(1 for k in common if tuple(getattr(sd[k], "shape", ())) == shapes[k])
        if score > best_score:
            best, best_score = arch, score
    if best is None:
        sample = ", ".join(list(sd)[:5]) or "(no keys)"
        raise WeightsError(
            "the weights do not belong to a known quality network (expected torchvision r2plus1d_18 "
            f"with fc 512->1, or the 'tiny' test network); first keys in the file: {sample}"
        )
    return best


# --------------------------------------------------------------------------- loading


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded object (plain dict or common checkpoint layouts)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path}: expected a state_dict (a mapping of tensors), found {type(obj).__name__}"
        )
    for key in _CHECKPOINT_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:8])) or "(empty)"
        raise WeightsError(f"{path}: contains no tensors; top-level keys: {keys}")
    return _strip_prefixes(tensors)  # type: ignore[return-value]


def check_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "weights") -> str:
    """Validate keys and shapes against the detected architecture; return it or raise WeightsError."""
    arch = architecture_of(state_dict)
    shapes = expected_shapes(arch)
    missing = [k for k in shapes if k not in state_dict]
    unexpected = [k for k in state_dict if k not in shapes]
    problems: list[str] = []
    if missing:
        problems.append(
            f"{len(missing)} missing key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, want in shapes.items():
        if key in state_dict and tuple(state_dict[key].shape) != want:
            got = tuple(state_dict[key].shape)
            msg = f"{key}: expected {_fmt(want)}, file has {_fmt(got)}"
            if key == "fc.weight" and arch == "r2plus1d_18" and got[:1] == (400,):
                msg += (
                    " - this looks like a Kinetics-400 checkpoint (torchvision's action-recognition "
                    "head); the quality model has a single-output head fc(512 -> 1)"
                )
            problems.append(msg)
    if problems:
        raise WeightsError(f"{source} do not fit the {arch} quality network: " + "; ".join(problems))
    return arch


def load_state_dict_checked(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load and validate a weights file; return a clean state_dict (prefixes and wrappers removed)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file is empty: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for garbage input
        if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc):
            why = "not a torch.save file, or it holds Python objects besides tensors (not loaded, for safety)"
        else:
            why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise WeightsError(f"{path} is not a readable PyTorch weights file ({why})") from exc
    state_dict = _unwrap(obj, path)
    check_state_dict(state_dict, source=str(path))
    return state_dict


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
    model.echo_channels_last = use_cl  # read by predict_scores
    return model


def model_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
) -> nn.Module:
    """Build the architecture *state_dict* belongs to, load it strictly, move to *device*, eval mode."""
    dev = resolve_device(device) if isinstance(device, str) else device
    model = build_model(architecture_of(state_dict))
    model.load_state_dict(state_dict, strict=True)
    return prepare_for_inference(model, dev)


def load_model(weights: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load and validate a weights file into its architecture on *device*, eval mode."""
    return model_from_state_dict(load_state_dict_checked(Path(weights), map_location="cpu"), device)


def resolve_weights_path(cli_value: str | os.PathLike[str] | None) -> Path | None:
    """--weights, else $ECHOQUALITY_WEIGHTS, else weights/video_quality_model.pt if present, else None."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get(WEIGHTS_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    if DEFAULT_WEIGHTS_PATH.is_file():
        return DEFAULT_WEIGHTS_PATH
    return None


@torch.no_grad()
def predict_scores(model: nn.Module, batch: torch.Tensor) -> np.ndarray:
    """Quality score (sigmoid of the logit) per clip of a (N, 3, T, H, W) batch, shape (N,)."""
    if batch.ndim == 4:
        batch = batch.unsqueeze(0)
    param = next(model.parameters())
    batch = batch.to(device=param.device, dtype=param.dtype, non_blocking=True)
    if getattr(model, "echo_channels_last", False):
        batch = batch.contiguous(memory_format=torch.channels_last_3d)
    logits = model(batch).reshape(batch.shape[0], -1)[:, 0]
    return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)
