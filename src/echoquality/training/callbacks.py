"""Per-epoch decisions and records: early stopping on the validation loss, the epoch's log line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EarlyStopping:
    """Stop after *patience* epochs without a validation-loss drop of more than *min_delta*."""

    patience: int = 5
    min_delta: float = 0.0
    best_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, loss: float, epoch: int) -> bool:
        """Record *epoch*'s loss; True when it is the new best."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience


def epoch_row(
    epoch: int, train_loss: float, train_acc: float, lr: float, seconds: float, val: Any
) -> dict[str, float]:
    """One row of the training history (metrics.json, MLflow, the history plot)."""
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_accuracy": train_acc,
        "lr": lr,
        "seconds": seconds,
        **val.flat("val_"),
    }


def epoch_line(row: dict[str, float], epochs: int, val: Any, improved: bool) -> str:
    """The progress line printed after each epoch (``*`` marks a new best)."""
    auc = "-" if val.roc_auc is None else f"{val.roc_auc:.3f}"
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.3f} | "
        f"val loss {val.loss:.4f} AUC {auc}{' *' if improved else ''} ({row['seconds']:.1f} s)"
    )
