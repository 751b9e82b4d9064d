"""`nhs-lookup lookup | batch | evaluate | catalogue`: the engine from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from nhs_lookup.commands.fit import FORCE_MODEL_HELP, MODEL_HELP

CATALOGUE_HELP = (
    "Catalogue file: NHS.json, a NICIP/SNOMED mapping (.csv/.xlsx) or a RadLex-style JSON. "
    "Default: $NHS_LOOKUP_CATALOGUE, else the small bundled sample."
)
CONFIG_HELP = "YAML config (scoring weights etc.); missing keys keep their defaults."
NAME_COLUMN_HELP = "Input column holding the exam name (case-insensitive)."
MODALITY_COLUMN_HELP = "Input column holding the RIS modality code."


def _columns(name_column: str, modality_column: str) -> dict[str, str]:
    """The --name-column / --modality-column choices as a rename map for the case reader."""
    return {"exam_name": name_column, "modality_code": modality_column}


def _engine(
    catalogue: Path | None, config: Path | None, model: Path | None = None, force_model: bool = False
):
    from rich.console import Console

    if model is not None:
        from nhs_lookup.commands.fit import model_engine

        return model_engine(model, catalogue, force_model)

    from nhs_lookup.catalogue import SAMPLE_CATALOGUE, CatalogueError
    from nhs_lookup.config import load_config
    from nhs_lookup.engine import LookupEngine

    try:
        cfg = load_config(config)
        engine = LookupEngine.load(cfg, catalogue)
    except (CatalogueError, FileNotFoundError, ValueError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if Path(engine.catalogue.source_path).resolve() == SAMPLE_CATALOGUE.resolve():
        Console(stderr=True).print(
            "[yellow]note:[/yellow] using the small bundled SAMPLE catalogue (placeholder SNOMED ids); "
            "pass --catalogue NHS.json or set $NHS_LOOKUP_CATALOGUE for real mappings"
        )
    return engine


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    c = result.components
    if result.best:
        e = result.best.entry
        con.print(
            f"[bold green]{e.name}[/bold green]  confidence [bold]{result.confidence:.2f}[/bold]"
            + ("  [yellow](ambiguous)[/yellow]" if result.ambiguous else "")
        )
        con.print(
            f"  SNOMED {e.snomed_id or '-'}  {e.fsn or ''}"
            + (f"  NICIP {e.nicip_code}" if e.nicip_code else "")
        )
        if e.laterality_fsn:
            con.print(f"  laterality {e.laterality_fsn}")
    else:
        con.print(f"[bold red]no match[/bold red] ({result.no_match_reason})")
    con.print(f"  {result.explanation}")
    comp = Table(title="components", show_header=False, box=None)
    for k in ("modality", "anatomy", "laterality", "contrast", "technique", "interventional", "clean_text"):
        v = getattr(c, k)
        comp.add_row(k, ", ".join(v) if isinstance(v, tuple) else str(v))
    con.print(comp)
    alt = Table(title="alternatives")
    for col in ("#", "name", "score", "anatomy", "modality", "laterality", "contrast"):
        alt.add_column(col)
    for i, cand in enumerate(result.candidates, 1):
        cs = cand.component_scores
        alt.add_row(
            str(i),
            cand.entry.name,
            f"{cand.score:.3f}",
            *(f"{cs.get(k, 0):.2f}" for k in ("anatomy", "modality", "laterality", "contrast")),
        )
    con.print(alt)


def _read_gold(
    gold_files: list[Path], json_out: Path | None, err: Any, columns: dict[str, str] | None = None
) -> tuple[list, list]:
    """Check the report path is writable, then read the gold files; exit 2 (one line) when the report
    cannot be written, a file cannot be read, or no case carries a label."""
    from nhs_lookup.batch_output import writable_problem
    from nhs_lookup.cases import CaseFileError, load_cases

    problem = writable_problem(json_out, force=True) if json_out else None
    if problem:
        err.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)
    try:
        cases, errors = load_cases(gold_files, columns)
    except CaseFileError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not any(c.labelled for c in cases):
        names = ", ".join(map(str, gold_files))
        err.print(
            f"[red]error:[/red] {names}: 0 labelled cases ({len(cases)} read, {len(errors)} bad rows); "
            "evaluate needs 'acceptable' or 'no_match' labels"
        )
        raise typer.Exit(2)
    return cases, errors


def _warn_unknown_labels(cases: list, catalogue: Any, err: Any) -> list:
    """Warn (per case, capped, then counted) about gold labels naming no catalogue row."""
    from nhs_lookup.batch_output import ERRORS_SHOWN
    from nhs_lookup.cases import unknown_labels

    warnings = unknown_labels(cases, catalogue)
    for w in warnings[:ERRORS_SHOWN]:
        err.print(f"warning: {w.message()}", markup=False)
    if warnings:
        err.print(f"{len(warnings)} gold label(s) name no catalogue row (those cases cannot score)")
    return warnings


def _report_bad_rows(errors: list, output: Path | None, err: Any) -> None:
    """A capped summary of unreadable input rows; the full list next to *output* when there is one."""
    from nhs_lookup.batch_output import error_summary, errors_path, write_errors

    for line in error_summary(errors):
        err.print(line, markup=False, highlight=False)
    if errors and output is not None:
        write_errors(errors_path(output), errors)
        err.print(f"all {len(errors)} bad row(s) listed in {errors_path(output)}", highlight=False)


def _flagged_rows(results: list) -> list[dict[str, Any]]:
    """Result dicts with the review app's flags (same rules and default thresholds) and
    ``needs_review``, so a batch file and the web app agree on what a coder must check."""
    from nhs_lookup.records import flag_cells
    from nhs_lookup.service.review import proposal_flags
    from nhs_lookup.service.settings import ReviewRules

    rules = ReviewRules()
    rows = []
    for result in results:
        flags = proposal_flags(result, rules)
        rows.append(result.to_dict() | {"flags": flags, "needs_review": flag_cells(flags)["needs_review"]})
    return rows


def lookup_cmd(
    exam_name: str = typer.Argument(..., help="Exam name as the RIS writes it, e.g. 'CT Abdo/Pelvis C+'."),
    modality: str = typer.Option(
        None, "--modality", "-m", help="RIS modality code (evidence, e.g. CT, MR, Mamm)."
    ),
    exam_code: str = typer.Option(None, "--exam-code", help="RIS exam code (recorded in the output)."),
    source: str = typer.Option(None, "--source", help="Data source / RIS name (recorded in the output)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    catalogue: Path = typer.Option(None, "--catalogue", "-c", help=CATALOGUE_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    model: Path = typer.Option(None, "--model", help=MODEL_HELP),
    force_model: bool = typer.Option(False, "--force-model", help=FORCE_MODEL_HELP),
) -> None:
    """Map one exam name to the best catalogue row, with confidence, components and alternatives."""
    from nhs_lookup.records import ExamQuery

    engine = _engine(catalogue, config, model, force_model)
    result = engine.lookup(ExamQuery(exam_name, modality, exam_code, source))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)


def batch_cmd(
    input_file: Path = typer.Argument(
        ..., help="Input cases: JSON list or CSV with EXAM_NAME (and MODALITY_CODE, ...)."
    ),
    output_file: Path = typer.Argument(
        None,
        help="Output file (.json or .csv); an existing file needs --force. Or give -o.",
        show_default=False,
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Output file (instead of the 2nd argument)."),
    catalogue: Path = typer.Option(None, "--catalogue", "-c", help=CATALOGUE_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    name_column: str = typer.Option("EXAM_NAME", "--name-column", help=NAME_COLUMN_HELP),
    modality_column: str = typer.Option("MODALITY_CODE", "--modality-column", help=MODALITY_COLUMN_HELP),
    model: Path = typer.Option(None, "--model", help=MODEL_HELP),
    force_model: bool = typer.Option(False, "--force-model", help=FORCE_MODEL_HELP),
) -> None:
    """Map every exam of a file. Bad rows are reported and skipped; the rest are processed."""
    from rich.console import Console
    from rich.progress import Progress

    from nhs_lookup.batch_output import writable_problem, write_results
    from nhs_lookup.cases import CaseFileError, iter_cases

    err = Console(stderr=True)
    output_file = output or output_file
    if output_file is None:
        err.print("[red]error:[/red] give the output file (2nd argument or -o/--output)")
        raise typer.Exit(2)
    if output_file.suffix.lower() not in {".json", ".csv"}:
        err.print("[red]error:[/red] output must be .json or .csv")
        raise typer.Exit(2)
    problem = writable_problem(output_file, force=force)
    if problem:
        err.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(2)
    errors: list = []
    try:
        cases = list(iter_cases(input_file, errors, _columns(name_column, modality_column)))
    except CaseFileError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    engine = _engine(catalogue, config, model, force_model)
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("looking up", total=len(cases))
        for start in range(0, len(cases), 256):
            chunk = cases[start : start + 256]
            results.extend(engine.lookup_many([c.query for c in chunk]))
            progress.advance(task, len(chunk))
    rows = _flagged_rows(results)
    write_results(output_file, rows)
    _report_bad_rows(errors, output_file, err)
    matched = sum(r["matched"] for r in rows)
    review = sum(r["needs_review"] for r in rows)
    err.print(
        f"{len(rows)} exams processed: {matched} proposed, {len(rows) - matched} no match; "
        f"{review} need review; {len(errors)} bad rows -> {output_file}"
    )
    if errors:
        raise typer.Exit(1)


def evaluate_cmd(
    gold_files: list[Path] = typer.Argument(
        ..., help="Gold-labelled cases (JSON/CSV with 'acceptable' / 'no_match'); several are pooled."
    ),
    catalogue: Path = typer.Option(None, "--catalogue", "-c", help=CATALOGUE_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    output: Path = typer.Option(None, "--output", "-o", help="Also save the full report as JSON here."),
    json_out: Path = typer.Option(None, "--json", hidden=True, help="Old name of --output."),
    name_column: str = typer.Option("EXAM_NAME", "--name-column", help=NAME_COLUMN_HELP),
    modality_column: str = typer.Option("MODALITY_CODE", "--modality-column", help=MODALITY_COLUMN_HELP),
    show_errors: int = typer.Option(50, "--errors", help="How many errors to list (0: none)."),
    model: Path = typer.Option(None, "--model", help=MODEL_HELP),
    force_model: bool = typer.Option(False, "--force-model", help=FORCE_MODEL_HELP),
    cv: str = typer.Option(
        None,
        "--cv",
        help="Cross-validate instead: K folds grouped by name, or 'hospital' (leave one out).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the --cv fold assignment."),
) -> None:
    """Top-1/top-5 accuracy, MRR, no-match precision/recall, breakdowns, calibration and errors."""
    from rich.console import Console
    from rich.table import Table

    from nhs_lookup.evaluate import evaluate

    con = Console()
    err = Console(stderr=True, highlight=False)
    gold_file = gold_files[0] if len(gold_files) == 1 else ", ".join(map(str, gold_files))
    json_out = output or json_out
    cases, errors = _read_gold(gold_files, json_out, err, _columns(name_column, modality_column))
    engine = _engine(catalogue, config, model, force_model)
    if cv:
        from nhs_lookup.commands.fit import run_cv, write_cv

        write_cv(run_cv(engine, cases, cv, seed), con, json_out, gold_file)
        return
    label_warnings = _warn_unknown_labels(cases, engine.catalogue, err)
    rep = evaluate(engine, cases)
    con.print(
        f"[bold]{gold_file}[/bold]: {rep.n_cases} labelled cases, catalogue {engine.catalogue.source_path}"
    )
    con.print(
        f"top-1 accuracy [bold]{rep.top1_accuracy:.3f}[/bold]   top-5 [bold]{rep.top5_accuracy:.3f}[/bold]   "
        f"MRR {rep.mrr:.3f}   no-match precision {rep.no_match_precision:.2f} recall {rep.no_match_recall:.2f}   "
        f"coverage {rep.coverage:.2f}   {rep.exams_per_second:.0f} exams/s"
    )
    for title, groups in (("by modality code", rep.by_modality), ("by data source", rep.by_source)):
        t = Table(title=title)
        for col in ("group", "n", "top-1", "top-5"):
            t.add_column(col)
        for name, g in groups.items():
            t.add_row(name, str(g.labelled), f"{g.top1_accuracy or 0:.2f}", f"{g.top5_accuracy or 0:.2f}")
        con.print(t)
    t = Table(title="calibration (confidence band vs top-1 accuracy)")
    for col in ("band", "n", "mean confidence", "accuracy"):
        t.add_column(col)
    for b in rep.calibration:
        t.add_row(
            b.band,
            str(b.labelled),
            "-" if b.mean_confidence is None else f"{b.mean_confidence:.2f}",
            "-" if b.accuracy is None else f"{b.accuracy:.2f}",
        )
    con.print(t)
    if show_errors and rep.errors:
        t = Table(title=f"errors ({len(rep.errors)})")
        for col in ("exam name", "code", "predicted", "conf", "rank", "acceptable"):
            t.add_column(col)
        for o in rep.errors[:show_errors]:
            t.add_row(
                o.exam_name,
                o.modality_code or "",
                o.predicted or f"NO MATCH ({o.no_match_reason})",
                f"{o.confidence:.2f}",
                str(o.rank or "-"),
                "NO MATCH" if o.gold_no_match else " | ".join(o.acceptable[:3]),
            )
        con.print(t)
    _report_bad_rows(errors, json_out, err)
    if json_out:
        import nhs_lookup

        data = rep.to_dict()
        data["meta"] = {
            "version": nhs_lookup.__version__,
            "gold_file": str(gold_file),
            "catalogue": engine.catalogue.source_path,
            "config": engine.config.to_dict(),
            "bad_rows": len(errors),
            "unknown_gold_labels": [vars(w) for w in label_warnings],
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(data, indent=1, default=str))


def catalogue_cmd(
    catalogue: Path = typer.Option(None, "--catalogue", "-c", help=CATALOGUE_HELP),
    search: str = typer.Option(None, "--search", "-s", help="Free-text search of the catalogue."),
    limit: int = typer.Option(20, "--limit", help="Rows to show for --search."),
) -> None:
    """Catalogue summary (rows, modalities), or a free-text search with --search."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    engine = _engine(catalogue, None)
    con = Console()
    if search:
        t = Table(title=f"search: {search}")
        for col in ("name", "SNOMED", "FSN", "laterality"):
            t.add_column(col)
        for e in engine.search_catalogue(search, limit):
            t.add_row(e.name, e.snomed_id or "", e.fsn or "", e.laterality_fsn or "")
        con.print(t)
        return
    cat = engine.catalogue
    mods = Counter(e.components.modality or "?" for e in cat.entries)
    con.print(
        f"{cat.source_path}: {len(cat)} rows, {sum(e.is_interventional for e in cat.entries)} interventional"
    )
    con.print(", ".join(f"{m} {n}" for m, n in mods.most_common()))


def register(app: typer.Typer) -> None:
    """Add `lookup`, `batch`, `evaluate` and `catalogue`."""
    app.command("lookup")(lookup_cmd)
    app.command("batch")(batch_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("catalogue")(catalogue_cmd)
