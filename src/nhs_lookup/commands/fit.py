"""``nhs-lookup fit``: learn a model file from gold files and/or the review app's decisions; plus the
helpers ``evaluate --cv`` and ``--model`` use (engine from a model file, the cross-validation tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True, highlight=False)

MODEL_HELP = "Model file written by `nhs-lookup fit` (learned shorthand, calibration, no-match threshold)."
FORCE_MODEL_HELP = "Load the --model even if it was fitted on another catalogue."


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def model_engine(model: Path, catalogue: Path | None, force: bool) -> Any:
    """Engine from a model file, or exit 2 with the reason (other catalogue, unreadable file)."""
    from nhs_lookup.catalogue import CatalogueError
    from nhs_lookup.learning.model import ModelError, check_catalogue, load_engine

    try:
        engine, m = load_engine(model, catalogue, force=force)
        notes = check_catalogue(m, engine.catalogue, force=True) if force else []
    except (ModelError, CatalogueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    for note in notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    err.print(
        f"model {model}: {len(m.associations)} learned terms, "
        f"{'calibrated' if m.calibration else 'uncalibrated'}, no-match below {m.no_match_threshold:.3f}"
    )
    return engine


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def cv_table(cv: Any, title: str) -> Any:
    """Per-fold and pooled figures of a cross-validation as a Rich table."""
    from rich.table import Table

    t = Table(title=title)
    cols = (
        "fold",
        "train",
        "test",
        "top-1",
        "top-5",
        "MRR",
        "no-match P",
        "no-match R",
        "ECE",
        "auto-accept@99%",
        "its precision",
        "oracle",
    )
    for col in cols:
        t.add_column(col, justify="left" if col == "fold" else "right")

    def row(name: str, train: str, test: str, m: Any) -> list[str]:
        ece = "-" if m.ece is None else f"{m.ece:.3f}"
        mrr = "-" if m.mrr is None else f"{m.mrr:.3f}"
        return [name, train, test, _pct(m.top1), _pct(m.top5), mrr, _pct(m.no_match_precision),
                _pct(m.no_match_recall), ece, _pct(m.auto_accept_coverage), _pct(m.auto_accept_precision),
                _pct(m.auto_accept_oracle_coverage)]  # fmt: skip

    for f in cv.folds:
        t.add_row(*row(f.fold.name, str(len(f.fold.train)), str(len(f.fold.test)), f.metrics))
    t.add_row(*row("[bold]pooled[/bold]", "", str(cv.pooled.cases), cv.pooled))
    return t


def run_cv(engine: Any, cases: list[Any], cv: str, seed: int) -> Any:
    """``evaluate --cv``: fit on the other folds, judge each held-out fold."""
    from nhs_lookup.learning.crossval import cross_validate, make_folds
    from nhs_lookup.learning.fit import FitOptions, fitted_engine

    labelled = [c for c in cases if c.labelled]
    try:
        folds = make_folds(labelled, cv, seed)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    opts = FitOptions(seed=seed)
    return cross_validate(labelled, folds, lambda train: fitted_engine(engine, train, opts), scheme=str(cv))


def fit(
    gold_files: list[Path] = typer.Argument(None, help="Gold-labelled case files (JSON/CSV)."),
    catalogue: Path = typer.Option(None, "--catalogue", "-c", help="Catalogue the model is fitted for."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (JSON)."),
    review_db: str = typer.Option(
        None,
        "--review-db",
        help="Review-app database (SQLAlchemy URL or SQLite path): human decisions are labels.",
    ),
    config: Path = typer.Option(None, "--config", help="Engine config YAML the model starts from."),
    folds: int = typer.Option(
        5, "--folds", min=2, help="Folds (grouped by name) for out-of-fold calibration."
    ),
    cv: str = typer.Option(
        "5", "--cv", help="Cross-validation stored in the model: K folds, 'hospital' or 'none'."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
    min_support: int = typer.Option(2, "--min-support", min=1, help="Distinct names a learned term needs."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model file."),
) -> None:
    """Learn a model file: a site's shorthand from labelled pairs, a calibration map behind `confidence`
    (isotonic, on out-of-fold answers) and the no-match threshold. `lookup`, `batch`, `evaluate`,
    `validate` and `serve` load it with --model."""
    from nhs_lookup.cases import CaseFileError, load_cases
    from nhs_lookup.commands.lookup import _engine
    from nhs_lookup.learning.fit import FitOptions, fit_model
    from nhs_lookup.learning.review import review_cases

    if output.exists() and not force:
        raise _fail(f"{output} exists (use --force to overwrite)")
    if not gold_files and not review_db:
        raise _fail("give gold files, --review-db, or both")
    cases: list[Any] = []
    try:
        if gold_files:
            cases, errors = load_cases(gold_files)
            for e in errors[:20]:
                err.print(f"[yellow]skipped[/yellow] {e.source} row {e.row}: {e.message}")
        reviewed = review_cases(review_db) if review_db else []
    except (CaseFileError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    cases = [c for c in cases if c.labelled] + reviewed
    if not cases:
        raise _fail("no labelled cases (gold labels or human review decisions) to fit on")
    engine = _engine(catalogue, config)
    opts = FitOptions(folds=folds, seed=seed, min_support=min_support)
    files = [str(p) for p in gold_files or []] + ([review_db] if review_db else [])
    model = fit_model(engine, cases, opts, files=files, review_decisions=len(reviewed))
    if cv.strip().lower() != "none":
        result = run_cv(engine, cases, cv, seed)
        model.cv_metrics = result.to_dict()
        console.print(cv_table(result, f"cross-validation ({cv}) of this fit"))
    model.save(output)
    console.print(
        f"fitted on {len(cases)} labelled cases ({len(reviewed)} from review decisions): "
        f"{len(model.associations)} learned terms, no-match below {model.no_match_threshold:.3f} -> {output}"
    )
    for a in model.associations[:15]:
        console.print(f"  [dim]{a.token} -> {a.phrase} ({a.support}/{a.names} names)[/dim]")


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)


def write_cv(result: Any, con: Console, json_out: Path | None, label: str) -> None:
    """Print the cross-validation table (and save it as JSON)."""
    import json

    con.print(f"[bold]{label}[/bold]: {result.pooled.cases} labelled cases, cross-validation {result.scheme}")
    con.print(cv_table(result, f"cross-validation ({result.scheme}): each fold fitted on the others"))
    con.print(
        "[dim]auto-accept@99%: share of names accepted at the threshold each fold chose on its training "
        "folds (honest), and the precision it reached; oracle: the threshold picked on the held-out "
        "answers themselves (optimistic).[/dim]"
    )
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=1))
