"""`echoquality report`: one self-contained HTML file summarising an inference run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `report` to *app*."""

    @app.command("report")
    def report(
        results: Path = typer.Option(
            Path("results/inference_output"),
            "--results",
            help="Inference output folder (results.csv or summary.json).",
        ),
        html: Path = typer.Option(
            Path("report.html"), "--output", "-o", "--html", help="HTML file to write."
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="Folder the run read (default: from run_info.json)."
        ),
        top: int = typer.Option(
            12, min=0, max=200, help="Clips shown in 'lowest scores' and 'most uncertain'."
        ),
        workers: int = typer.Option(2, min=0, max=64, help="Preview worker processes (0: threads)."),
        show_identifiers: bool = typer.Option(
            False, "--show-identifiers", help="Real folder names instead of aliases (may name patients)."
        ),
        raw_frames: bool = typer.Option(
            False, "--raw-frames", help="Previews without the sector mask (burned-in text visible)."
        ),
    ) -> None:
        """Write a single HTML file (inline styles, embedded previews): totals, score distribution,
        per-machine and per-folder tables, the lowest-scoring and most uncertain clips, skip reasons.
        For sharing with people who will not run `echoquality review`."""
        from rich.console import Console

        from echoquality.results_table import ResultsError

        console = Console(stderr=True)
        try:
            from echoquality.review.report import write_report
        except ImportError as exc:
            console.print(f"[red]error:[/red] report needs Jinja2 ({exc}): pip install jinja2")
            raise typer.Exit(2) from None
        try:
            out = write_report(
                results,
                html,
                data_dir=data_dir,
                top=top,
                workers=workers,
                show_identifiers=show_identifiers,
                raw_frames=raw_frames,
            )
        except ResultsError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot write {html}: {exc}")
            raise typer.Exit(2) from None
        console.print(f"Report: {out} ({out.stat().st_size / 1024:.0f} KiB)")
