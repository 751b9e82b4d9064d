"""Weights files as state_dicts: reading, unwrapping, checking against an architecture, loading.

A weights file is a plain ``state_dict``; checkpoints wrapping it (``{"model_state_dict": ...}``,
``{"state_dict": ...}``) and ``module.`` prefixes (DataParallel) are accepted. Every problem with a file
raises :class:`WeightsError` with a message that says what is wrong and what to do.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from echoquality.model.networks import ARCHITECTURES, build_model, expected_shapes
from echoquality.model.predict import prepare_for_inference, resolve_device

DEFAULT_WEIGHTS_PATH = Path("weights/video_quality_model.pt")
WEIGHTS_ENV_VAR = "ECHOQUALITY_WEIGHTS"
REFERENCE_WEIGHTS_SHA256 = "7c9cff73ed76afed0bdbc9351c4657d26d515e828233a1ae4f263b15926d5e58"
REFERENCE_WEIGHTS_SIZE = 125_382_818

# Keys under which training checkpoints commonly nest the model's state_dict.
_CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")


class WeightsError(Exception):
    """A weights file is missing, unreadable or does not fit the quality network."""


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
