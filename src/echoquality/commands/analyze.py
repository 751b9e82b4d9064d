"""`echoquality analyze`: summarise an inference run and dry-run the training-set selection."""

from __future__ import annotations

from pathlib import Path

import typer

from echoquality.scoring import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    """Add `analyze` to *app*."""

    @app.command("analyze")
    def analyze(
        results: Path = typer.Option(
            Path("results/inference_output"),
            "--results",
            help="Inference output folder (results.csv or summary.json).",
        ),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Where analysis.json and the plots go (default: the results folder)."
        ),
        high_quality_threshold: float = typer.Option(
            0.95, help="Score >= this and PASS counts as high quality."
        ),
        low_quality_threshold: float = typer.Option(
            0.1, help="Score <= this and FAIL counts as low quality."
        ),
        max_high_quality: int = typer.Option(800, help="Cap on high-quality clips prepare-data would take."),
        max_low_quality: int = typer.Option(300, help="Cap on low-quality clips prepare-data would take."),
        seed: int = typer.Option(42, help="Seed for the capped sampling (same as prepare-data)."),
        threshold: float = typer.Option(DEFAULT_THRESHOLD, help="PASS threshold drawn on the score plot."),
        no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    ) -> None:
        """Report totals, pass rate, score quantiles, assessment bands, per machine type and folder,
        skip reasons, and how many clips `prepare-data` would select with these thresholds.

        Writes analysis.json (+ PNG plots) into the results folder or --output.
        """
        from rich.console import Console
        from rich.table import Table

        from echoquality.evaluation.analyze import summarise, write_analysis, write_plots
        from echoquality.results_table import ResultsError, load_results
        from echoquality.training.selection import PrepareError, SelectionCriteria

        console = Console()
        try:
            records, source = load_results(results)
            criteria = SelectionCriteria(
                high_quality_threshold, low_quality_threshold, max_high_quality, max_low_quality, seed
            )
            analysis = summarise(records, criteria, source=str(source))
        except (ResultsError, PrepareError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        out = output or results
        json_path = write_analysis(analysis, out)
        plots = [] if no_plots else write_plots(records, analysis, out, threshold)

        o = analysis.overall
        console.print(f"[bold]{source}[/bold]: {o.files} files, {o.scored} scored, {o.skipped} skipped")
        if o.pass_rate is not None:
            q = o.quantiles
            console.print(
                f"pass rate {o.pass_rate:.1f}%  mean {o.mean_score:.3f}  "
                f"min {q['min']:.3f}  p25 {q['p25']:.3f}  median {q['median']:.3f}  p75 {q['p75']:.3f}  "
                f"max {q['max']:.3f}"
            )
        table = Table(title="Per machine type (bands: excellent/good/acceptable/poor/very poor/critical)")
        for col in ("machine type", "files", "scored", "pass %", "mean", "bands"):
            table.add_column(col, justify="right" if col != "machine type" else "left", no_wrap=True)
        for name, g in analysis.by_machine_type.items():
            table.add_row(
                name,
                str(g.files),
                str(g.scored),
                "-" if g.pass_rate is None else f"{g.pass_rate:.1f}",
                "-" if g.mean_score is None else f"{g.mean_score:.3f}",
                "/".join(str(v) for v in g.bands.values()),
            )
        console.print(table)
        ft = Table(title="Per folder")
        for col in ("folder", "files", "scored", "skipped", "pass %"):
            ft.add_column(col, justify="right" if col != "folder" else "left")
        for name, g in analysis.by_folder.items():
            ft.add_row(
                name,
                str(g.files),
                str(g.scored),
                str(g.skipped),
                "-" if g.pass_rate is None else f"{g.pass_rate:.1f}",
            )
        console.print(ft)
        if analysis.skip_reasons:
            console.print("skipped: " + ", ".join(f"{k} {v}" for k, v in analysis.skip_reasons.items()))
        c = analysis.candidates
        console.print(
            f"prepare-data dry run (HQ >= {high_quality_threshold} & PASS, LQ <= {low_quality_threshold} & FAIL): "
            f"HQ {c['hq_selected']}/{c['hq_candidates']}, LQ {c['lq_selected']}/{c['lq_candidates']} "
            f"(selected/candidates), excluded {c['excluded']}"
        )
        console.print(f"wrote {json_path}" + "".join(f", {p.name}" for p in plots))
