"""`echoquality train`: fine-tune or train the quality network on an annotations CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def train_cmd(
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        help="echo_annotations.csv from prepare-data (default: training_data/echo_annotations.csv).",
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Base folder for the CSV's video_path (default: the CSV's folder)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where models and reports go (default: trained_models)."
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="Initial weights (reference or a previous best_model.pt); omit to train from scratch.",
    ),
    arch: str | None = typer.Option(
        None,
        "--arch",
        help="r2plus1d_18 (the reference network) or tiny (CPU tests).",
        show_default="r2plus1d_18",
    ),
    trainable: str | None = typer.Option(
        None,
        "--trainable",
        help="Layers to fine-tune: fc, layer4 (= layer4+fc), layer3 (= layer3+layer4+fc), ..., or all.",
        show_default="layer4 (with --weights; all layers train from scratch)",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs (default: 20)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Clips per batch (default: 8)."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (default: 1e-4)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for split, shuffling, augmentation, init (default: 42)."
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Cache of preprocessed clips (default: clip_cache/ next to the annotations CSV).",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode DICOM every epoch (no clip cache)."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentation."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="plateau (ReduceLROnPlateau) or cosine.", show_default="plateau"
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto (cuda when available), cpu or cuda.", show_default="auto"
    ),
    workers: int | None = typer.Option(None, "--workers", help="DataLoader worker processes (default: 0)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUTPUT/last.pt."),
    force: bool = typer.Option(False, "--force", help="Start over in an OUTPUT that already holds a model."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not track the run in MLflow."),
    experiment_name: str | None = typer.Option(
        None,
        "--experiment-name",
        help="Name the run is recorded under (its MLflow experiment; runs of one name are grouped).",
        show_default="EchoQuality_Training",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML config (train:, preprocess:, inference:)."
    ),
) -> None:
    """Train the quality model and write OUTPUT/best_model.pt (loadable by `echoquality infer --weights`),
    last.pt (for --resume), metrics.json, config.yaml, splits.csv, skipped_files.json and plots.

    Runs on one process by default; under `torchrun --nproc_per_node N` it uses DistributedDataParallel.
    MLflow logs to ./mlruns (view: mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db) or
    $MLFLOW_TRACKING_URI. Exit 0 on success, 1 on a failed run, 2 on bad options.
    """
    import os

    from rich.console import Console

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    console = Console()
    cfg = _config_with_options(
        config,
        console,
        {
            "annotations": str(annotations) if annotations else None,
            "data_root": str(data_root) if data_root else None,
            "output_dir": str(output) if output else None,
            "weights": str(weights) if weights else None,
            "architecture": arch,
            "trainable_layers": tuple(trainable.split(",")) if trainable else None,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": lr,
            "seed": seed,
            "cache_dir": str(cache_dir) if cache_dir else None,
            "scheduler": scheduler,
            "device": device,
            "num_workers": workers,
            "experiment_name": experiment_name,
            "use_cache": False if no_cache else None,
            "augmentation": False if no_augment else None,
            "mlflow": False if no_mlflow else None,
        },
    )
    if cache_dir is None and cfg.train.cache_dir == "training_data/clip_cache":
        # the cache lives with the training set it caches, not in the working directory
        cfg.train.cache_dir = str(Path(cfg.train.annotations).parent / "clip_cache")
    _run_training(cfg, resume, force, console)


def _config_with_options(config: Path | None, console: Any, options: dict[str, Any]) -> Any:
    """The YAML config (or the defaults) with every command-line option applied; bad YAML exits 2."""
    from echoquality.config import load_config

    try:
        cfg = load_config(config)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _apply_options(cfg.train, options)
    return cfg


def _run_training(cfg: Any, resume: bool, force: bool, console: Any) -> None:
    """Train; usage errors exit 2, an interrupt exits 1 with the --resume hint; rank 0 prints the result."""
    import os

    from echoquality.model import WeightsError
    from echoquality.training.dataset import AnnotationsError
    from echoquality.training.train import TrainError, train

    try:
        result = train(cfg, resume=resume, force=force, log=console.print)
    except (TrainError, AnnotationsError, WeightsError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]: continue with --resume --output {cfg.train.output_dir}")
        raise typer.Exit(1) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # torchrun: rank 0 reports
    _print_result(console, result)


def register(app: typer.Typer) -> None:
    """Add `train` to *app*."""
    app.command("train")(train_cmd)


def _apply_options(tc: Any, options: dict[str, Any]) -> None:
    """Set every option given on the command line (None: keep the config's value)."""
    for key, value in options.items():
        if value is not None:
            setattr(tc, key, value)


def _print_result(console: Any, result: Any) -> None:
    """The test metrics, skipped files and where the best model is."""
    t = result.test
    if t is not None:
        parts = [f"test ROC AUC {t.roc_auc:.3f}" if t.roc_auc is not None else "test ROC AUC n/a"]
        for key, m in t.at.items():
            parts.append(f"@{key}: acc {m.accuracy:.3f} F1 {m.f1:.3f}")
        console.print("; ".join(parts))
    if result.skipped:
        console.print(
            f"[yellow]{len(result.skipped)} file(s) skipped[/yellow]: see {result.output_dir / 'skipped_files.json'}"
        )
    console.print(
        f"[green]best model[/green] (epoch {result.best_epoch}): {result.best_model}"
        + (f"  MLflow run {result.mlflow_run_id}" if result.mlflow_run_id else "")
    )
