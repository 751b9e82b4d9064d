"""Training checkpoints: ``best_model.pt`` (a plain state_dict ``infer`` loads) and ``last.pt``
(model, optimiser, scheduler, scaler, early-stopping state, history and RNG states for ``--resume``).

Files are written atomically (temporary file, then rename): an interrupted run never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echoquality.training.callbacks import EarlyStopping
from echoquality.training.errors import TrainError

if TYPE_CHECKING:
    from echoquality.training.loop import Optimisation


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


@dataclass(frozen=True)
class CheckpointPaths:
    """Where a run in *out* keeps its checkpoints."""

    out: Path

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    @property
    def best(self) -> Path:
        return self.out / "best_model.pt"

    def check_start(self, resume: bool, force: bool) -> None:
        """--resume needs last.pt; a fresh run never overwrites a trained model without --force."""
        if resume and not self.last.is_file():
            raise TrainError(f"--resume: no checkpoint at {self.last}")
        if not resume and not force and (self.last.exists() or self.best.exists()):
            raise TrainError(
                f"{self.out} already holds a trained model; use --resume to continue it, --force to start "
                "over, or another --output"
            )


@dataclass
class RunState:
    """What carries over between epochs (and across --resume)."""

    epoch: int = 0  # last completed epoch
    stopper: EarlyStopping = field(default_factory=EarlyStopping)
    history: list[dict[str, float]] = field(default_factory=list)
    mlflow_run_id: str | None = None


def save_best(model: Any, path: Path) -> None:
    """The model's weights as a plain CPU state_dict."""
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def save_last(path: Path, model: Any, optim: Optimisation, state: RunState, architecture: str) -> None:
    """Everything ``restore_last`` needs to continue after ``state.epoch``."""
    import torch

    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optim.optimizer.state_dict(),
            "scheduler": optim.scheduler.state_dict(),
            "scaler": optim.scaler.state_dict() if optim.use_amp else None,
            "epoch": state.epoch,
            "best_loss": state.stopper.best_loss,
            "best_epoch": state.stopper.best_epoch,
            "bad_epochs": state.stopper.bad_epochs,
            "history": state.history,
            "architecture": architecture,
            "mlflow_run_id": state.mlflow_run_id,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        },
        path,
    )


def restore_last(
    path: Path, model: Any, optim: Optimisation, device: Any, patience: int, min_delta: float
) -> RunState:
    """Load ``last.pt`` into *model* and *optim*, restore the RNG states; return the run state."""
    import torch

    ckpt = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optim.optimizer.load_state_dict(ckpt["optimizer"])
    optim.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        optim.scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        np.random.set_state(rng["numpy"])
    if "python" in rng:
        random.setstate(rng["python"])
    stopper = EarlyStopping(patience, min_delta, ckpt["best_loss"], ckpt["best_epoch"], ckpt["bad_epochs"])
    return RunState(ckpt["epoch"], stopper, ckpt["history"], ckpt.get("mlflow_run_id"))
