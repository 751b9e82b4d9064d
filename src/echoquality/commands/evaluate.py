"""`echoquality evaluate`: metrics with bootstrap confidence intervals on human-labelled clips."""

from __future__ import annotations

from pathlib import Path

import typer

from echoquality.scoring import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    """Add `evaluate` to *app*."""

    @app.command("evaluate")
    def evaluate_cmd(
        weights: Path = typer.Option(
            ..., "--weights", help="Weights file (reference or a trained best_model.pt)."
        ),
        labels: Path = typer.Option(
            ..., "--labels", help="CSV with columns path,label (1 good / 0 poor), e.g. from a cardiologist."
        ),
        data_root: Path | None = typer.Option(
            None,
            "--data-root",
            help="Base folder for relative paths in --labels (default: the labels file's folder).",
        ),
        output: Path = typer.Option(Path("results/evaluation"), "--output", "-o", help="Report folder."),
        threshold: float | None = typer.Option(
            None, "--threshold", help=f"PASS threshold (default: config, {DEFAULT_THRESHOLD:g})."
        ),
        bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals."),
        seed: int = typer.Option(42, "--seed", help="Seed of the bootstrap."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        gradcam: Path | None = typer.Option(
            None, "--gradcam", help="Also save a Grad-CAM GIF per clip here."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="YAML config (preprocess: must match training)."
        ),
    ) -> None:
        """Score labelled clips and report accuracy, precision, recall, F1 (at 0.5 and the PASS threshold),
        ROC AUC and PR AUC with bootstrap 95% confidence intervals. Writes evaluation.json, predictions.csv
        and ROC/PR/confusion-matrix plots to --output. Exit 2 on bad input."""
        from rich.console import Console
        from rich.table import Table

        from echoquality.config import load_config
        from echoquality.evaluation.evaluate import evaluate
        from echoquality.model import WeightsError
        from echoquality.training.selection import PrepareError

        console = Console()
        try:
            cfg = load_config(config)
            thr = cfg.inference.threshold if threshold is None else threshold
            result = evaluate(
                weights,
                labels,
                data_root=data_root,
                output_dir=output,
                preprocess=cfg.preprocess,
                threshold=thr,
                n_bootstrap=bootstrap,
                seed=seed,
                device=device,
                gradcam_dir=gradcam,
                log=console.print,
            )
        except (WeightsError, PrepareError, ValueError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        r = result.report
        table = Table(title=f"{r.n} clips ({r.n_positive} good), {len(result.skipped)} skipped")
        for col in ("metric", "estimate", "95% CI"):
            table.add_column(col)
        for name, iv in result.intervals.items():
            table.add_row(name, f"{iv.estimate:.3f}", f"{iv.lower:.3f} - {iv.upper:.3f}")
        console.print(table)
        console.print(
            f"wrote {output / 'evaluation.json'}" + (f"; Grad-CAM GIFs in {gradcam}" if gradcam else "")
        )
