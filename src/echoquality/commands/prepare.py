"""`echoquality prepare-data`: build training_data/ from inference results (+ human labels)."""

from __future__ import annotations

from pathlib import Path

import typer

from echoquality.scoring import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    """Add `prepare-data` to *app*."""

    @app.command("prepare-data")
    def prepare_data(
        results: Path | None = typer.Option(
            None,
            "--results",
            help="Inference output folder (results.csv or summary.json) whose confident scores become "
            "pseudo-labels. Omit it with --labels to build the set from your labels alone.",
            show_default="results/inference_output, or none when --labels is given",
        ),
        output: Path = typer.Option(
            Path("training_data"), "--output", "-o", help="Training-set folder to create."
        ),
        data_dir: Path | None = typer.Option(
            None,
            "--data-dir",
            help="Folder the inference run read (resolves relative paths; default: from run_info.json, else raw_data).",
        ),
        max_high_quality: int = typer.Option(800, help="At most this many high-quality (label 1) clips."),
        max_low_quality: int = typer.Option(300, help="At most this many low-quality (label 0) clips."),
        high_quality_threshold: float = typer.Option(0.95, help="HQ: score >= this AND status PASS."),
        low_quality_threshold: float = typer.Option(0.1, help="LQ: score <= this AND status FAIL."),
        seed: int = typer.Option(42, help="Seed for sampling over the caps (balanced across machine types)."),
        labels: Path | None = typer.Option(
            None,
            "--labels",
            help="CSV with columns path,label (1 good / 0 poor; path relative to --data-dir or absolute): "
            "human labels, added to the set and overriding pseudo-labels.",
        ),
        no_pseudo_labels: bool = typer.Option(
            False, "--no-pseudo-labels", help="Use only the human labels from --labels."
        ),
        review_queue_size: int = typer.Option(
            0,
            "--review-queue",
            help="Write the N least certain unlabelled clips to review_queue.csv for expert labelling.",
        ),
        review_center: float = typer.Option(
            DEFAULT_THRESHOLD,
            "--review-center",
            help=f"Uncertainty centre for --review-queue: the PASS threshold ({DEFAULT_THRESHOLD:g}).",
        ),
        force: bool = typer.Option(False, "--force", help="Replace an existing training set in --output."),
    ) -> None:
        """Build a training set: copy the chosen clips to OUTPUT/echo_videos/ and write
        echo_annotations.csv and dataset_analysis.json.

        From labelled clips alone: --labels labels.csv --data-dir RAW (no inference run, no weights).
        From an inference run: pseudo-labels from --results, plus --labels when you have them.

        HQ (label 1): score >= --high-quality-threshold and PASS. LQ (label 0): score <= --low-quality-threshold
        and FAIL. Everything else is excluded and counted. Pseudo-labels are the model's own confident
        predictions and teach it little; prefer human labels (--labels, --review-queue).
        """
        from rich.console import Console

        from echoquality.training.selection import PrepareError, SelectionCriteria
        from echoquality.training.trainset import (
            PrepareInputError,
            TrainingSetRequest,
            build_training_set,
        )

        console = Console()
        if results is None and labels is None:
            results = Path("results/inference_output")
        request = TrainingSetRequest(
            results=results,
            output=output,
            criteria=SelectionCriteria(
                high_quality_threshold, low_quality_threshold, max_high_quality, max_low_quality, seed
            ),
            data_dir=data_dir,
            labels=labels,
            use_pseudo=not no_pseudo_labels,
            review_queue_size=review_queue_size,
            review_center=review_center,
            force=force,
        )
        try:
            built = build_training_set(request)
        except PrepareInputError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        except PrepareError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        selection, report = built.selection, built.report
        console.print(
            f"HQ candidates {selection.hq_candidates} (kept {len(selection.high)}), "
            f"LQ candidates {selection.lq_candidates} (kept {len(selection.low)}), excluded {selection.excluded}"
        )
        if built.human_labels:
            console.print(f"human labels: {built.label_counts}")
        for m in report.missing_files:
            console.print(f"[yellow]missing source file:[/yellow] {m}")
        console.print(
            f"[green]{report.total_samples} clips[/green] ({report.high_quality_count} HQ / "
            f"{report.low_quality_count} LQ) copied to {output / 'echo_videos'}; "
            f"missing {len(report.missing_files)}; annotations: {output / 'echo_annotations.csv'}"
        )
        if report.review_queue:
            console.print(f"review queue: {report.review_queue} (closest to {review_center})")
