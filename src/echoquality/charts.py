"""PNG plots for training and evaluation: confusion matrix, ROC and PR curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echoquality.evaluation.metrics import threshold_metrics
from echoquality.scoring import DEFAULT_THRESHOLD


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: object, fig: object, path: Path) -> Path:
    """Lay out, write (100 dpi) and close one figure."""
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[attr-defined]
    return path


def save_metric_plots(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    out_dir: Path,
    prefix: str = "",
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Path]:
    """Write ``<prefix>confusion_matrix.png``, ``<prefix>roc_curve.png``, ``<prefix>pr_curve.png``."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_prob, dtype=float)
    paths = []

    m = threshold_metrics(y, p, threshold)
    cm = np.array([[m.tn, m.fp], [m.fn, m.tp]])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=14)
    ax.set_xticks([0, 1], ["poor (pred)", "good (pred)"])
    ax.set_yticks([0, 1], ["poor (true)", "good (true)"])
    ax.set_title(f"Confusion matrix at {threshold:g}")
    paths.append(_save(plt, fig, out_dir / f"{prefix}confusion_matrix.png"))

    two_classes = y.size > 0 and y.min() != y.max()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if two_classes:
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only: ROC undefined", ha="center")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve")
    paths.append(_save(plt, fig, out_dir / f"{prefix}roc_curve.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    if two_classes:
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=f"AUC {auc(rec, prec):.3f}")
        ax.axhline(y.mean(), color="k", ls="--", lw=0.8, label="chance")
        ax.legend(loc="lower left")
    else:
        ax.text(0.5, 0.5, "one class only: PR undefined", ha="center")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve")
    paths.append(_save(plt, fig, out_dir / f"{prefix}pr_curve.png"))
    return paths


def save_history_plot(history: list[dict[str, float]], out_path: Path) -> Path:
    """Train/val loss and val ROC AUC per epoch."""
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("train_loss", "val_loss"):
        ax.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h.get("val_roc_auc", np.nan) for h in history], "g--", label="val_roc_auc")
    ax2.set_ylim(0, 1.05)
    ax.legend(loc="upper left")
    ax2.legend(loc="upper right")
    _save(plt, fig, out_path)
    return out_path
