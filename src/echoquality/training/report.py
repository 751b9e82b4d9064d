"""What a training run leaves behind besides checkpoints (rank 0): the run's parameters,
``config.yaml``, ``metrics.json``, plots, the weights sidecar note, and the MLflow artifacts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig, TrainConfig
from echoquality.evaluation.metrics import MetricsReport
from echoquality.provenance import package_versions
from echoquality.training.checkpoint import write_json
from echoquality.training.dataset import ClipRecord


def run_params(
    tc: TrainConfig,
    network: Any,
    optim: Any,
    device: Any,
    world_size: int,
    sizes: dict[str, int],
    n_skipped: int,
) -> dict[str, Any]:
    """The run's parameters as logged to MLflow and written to metrics.json."""
    return {
        "architecture": network.architecture,
        "weights": tc.weights,
        "trainable": network.trainable_names,
        "trainable_params": network.n_trainable,
        "total_params": network.n_total,
        "epochs": tc.epochs,
        "batch_size": tc.batch_size,
        "learning_rate": tc.learning_rate,
        "weight_decay": tc.weight_decay,
        "scheduler": tc.scheduler,
        "pos_weight": round(optim.pos_weight, 4),
        "augmentation": tc.augmentation,
        "seed": tc.seed,
        "device": str(device),
        "world_size": world_size,
        "mixed_precision": optim.use_amp,
        "train_size": sizes["train"],
        "val_size": sizes["val"],
        "test_size": sizes["test"],
        "skipped_files": n_skipped,
        "annotations": tc.annotations,
    }


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def write_config(out: Path, cfg: EchoConfig) -> Path:
    """The full effective configuration as ``config.yaml``."""
    import yaml

    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))
    return path


def write_weights_note(best_path: Path, arch: str, annotations: str, kept: list[ClipRecord]) -> None:
    """Sidecar ``best_model.pt.json`` so ``infer`` can say what these weights are."""
    if not best_path.is_file():
        return
    from echoquality.model.weights import write_sidecar

    sources = dict(Counter(r.label_source for r in kept))
    note = (
        f"{arch} weights trained by `echoquality train` on {len(kept)} clips from {annotations} "
        f"(label sources: {sources}); not the reference weights"
    )
    if sources.get("pseudo"):
        note += "; pseudo-labels are the model's own predictions (confirmation bias)"
    write_sidecar(best_path, note, architecture=arch, annotations=annotations, label_sources=sources)


@dataclass
class TestOutcome:
    """The best checkpoint on the test split: report (None when empty), labels and scores."""

    report: MetricsReport | None
    labels: np.ndarray
    scores: np.ndarray


def finish_outputs(
    out: Path,
    params: dict[str, Any],
    history: list[dict[str, float]],
    best_epoch: int,
    test: TestOutcome,
    n_skipped: int,
    sizes: dict[str, int],
    threshold: float,
    tracker: Any,
) -> None:
    """metrics.json, plots and MLflow artifacts (rank 0)."""
    from echoquality.charts import save_history_plot, save_metric_plots

    plots = []
    if history:
        plots.append(save_history_plot(history, out / "training_history.png"))
    if test.report is not None:
        plots += save_metric_plots(test.labels, test.scores, out, prefix="test_", threshold=threshold)
        tracker.log_metrics(test.report.flat("test_"))
    metrics = {
        "best_epoch": best_epoch,
        "epochs_run": history[-1]["epoch"] if history else 0,
        "history": history,
        "test": test.report.to_dict() if test.report else None,
        "test_predictions": [
            {"label": int(y), "score": float(p)} for y, p in zip(test.labels, test.scores, strict=True)
        ],
        "split_sizes": sizes,
        "skipped_files": n_skipped,
        "params": params,
        "versions": package_versions("torch", "torchvision", "pydicom", "mlflow"),
        "mlflow_run_id": tracker.run_id,
    }
    write_json(out / "metrics.json", metrics)
    names = ("best_model.pt", "config.yaml", "metrics.json", "splits.csv", "skipped_files.json")
    for p in [*(out / n for n in names), *plots]:
        if p.is_file():
            tracker.log_artifact(p, artifact_path="plots" if p.suffix == ".png" else None)
