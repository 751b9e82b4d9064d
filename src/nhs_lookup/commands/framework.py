"""``nhs-lookup train | optimize | validate``: the framework around the lookup engine.

Heavy imports (the engine, SQLAlchemy, Optuna, MLflow) happen inside the commands so ``--help`` is fast.
Exit codes: 0 ok, 1 validation below ``--min-accuracy`` or a failed run, 2 usage / input errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nhs_lookup.commands.options import (
    CPU_COUNT,
    CatalogueOpt,
    ConfigAliasOpt,
    ConfigOpt,
    CreateStudyOpt,
    DatasetDirOpt,
    DatasetOpt,
    EarlyStopOpt,
    ForceModelOpt,
    JoinOpt,
    MlflowOpt,
    MlflowUriOpt,
    ModelOpt,
    ReportOpt,
    SeedOpt,
    SplitOpt,
    WorkersAliasOpt,
)

console = Console()
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}")  # messages may hold [..] (paths, pip extras)
    return typer.Exit(code)


def _datasets(
    dataset: list[Path] | None, dataset_dir: Path | None, preferred: str, catalogue: str | None
) -> tuple[list[Path], str | None]:
    """The case files to read and the catalogue to use. With no dataset given, the shared gold file
    (or the bundled sample) is used; shared gold names rows of the shared NHS.json, so that
    catalogue is paired with it unless --catalogue / $NHS_LOOKUP_CATALOGUE says otherwise."""
    from nhs_lookup.framework.paths import SAMPLE_CASES, default_cases, shared_file

    paths = list(dataset or [])
    if dataset_dir is not None:
        paths.append(dataset_dir)
    if paths:
        return paths, catalogue
    path, note = default_cases(preferred)
    console.print(f"[dim]{note}[/dim]")
    if path != SAMPLE_CASES and catalogue is None:
        nhs = shared_file("NHS.json")
        if nhs is not None:
            console.print(
                f"[dim]catalogue {nhs} (the shared gold labels name its rows; --catalogue to change)[/dim]"
            )
            catalogue = str(nhs)
    return [path], catalogue


def _config(config_path: Path | None) -> Any:
    from nhs_lookup.config import load_config

    try:
        return load_config(config_path)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str))
        console.print(f"report written to {path}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


# ------------------------------------------------------------------------------------------- train
def train(
    dataset: DatasetOpt = None,
    dataset_dir: DatasetDirOpt = None,
    experiment_name: Annotated[
        str | None,
        typer.Option(
            "--experiment-name",
            help="Name the run is recorded under (a session in --db); re-running the same name resumes it.",
            show_default="train-<first file name>",
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Cases per worker task.")] = 1000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Worker processes (each builds the engine once); default: the CPU count."
        ),
    ] = CPU_COUNT,
    max_workers: WorkersAliasOpt = None,
    checkpoint_interval: Annotated[
        int,
        typer.Option(
            "--checkpoint-interval", min=1, help="Commit results and a checkpoint every N processed cases."
        ),
    ] = 2500,
    config: ConfigOpt = None,
    config_path: ConfigAliasOpt = None,
    catalogue: CatalogueOpt = None,
    db: Annotated[
        str, typer.Option("--db", help="SQLAlchemy URL or SQLite file path of the result store.")
    ] = "training_sessions.db",
    seed: SeedOpt = 0,
    validation_split: Annotated[
        float,
        typer.Option(
            "--validation-split", min=0.0, max=0.99, help="Share of cases marked 'validation' in the store."
        ),
    ] = 0.1,
    split_by: SplitOpt = "source",
    success_threshold: Annotated[
        float | None,
        typer.Option(
            "--success-threshold",
            help="Confidence for a 'confident match' (success rate). Default: config.confident_threshold (0.7).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Start a new session even if this experiment exists (old rows are kept)."
        ),
    ] = False,
    report_json: ReportOpt = None,
    log_dir: Annotated[
        Path, typer.Option("--log-dir", help="Folder for training_YYYYMMDD_HHMMSS.log.")
    ] = Path("logs/training"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    model: ModelOpt = None,
    force_model: ForceModelOpt = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="local (process pool, default) | ray (chunks as Ray tasks; docs/scaling.md)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="--engine ray: cluster to join (auto | HOST:PORT); default a local Ray."
        ),
    ] = None,
) -> None:
    """Run the engine over a (large) case set: worker processes, a SQL result store, checkpoints and resume.

    Every case gets one row (input, expected, predicted, confidence, rank of the correct answer, time, error, split). Kill it at any time and run the same command again: it continues after the last checkpoint. Prints top-1/top-5 accuracy (labelled cases), success rate, calibration, per-modality and per-source tables.
    """
    from nhs_lookup.cases import CaseFileError
    from nhs_lookup.framework.train import ResumeMismatchError, TrainOptions, run_training

    config_path = config or config_path
    paths, catalogue = _datasets(dataset, dataset_dir, "dev_gold.json", catalogue)
    name = experiment_name or f"train-{Path(paths[0]).stem}"
    opts = TrainOptions(
        datasets=paths,
        experiment_name=name,
        db=db,
        config=_config(config_path),
        config_path=str(config_path) if config_path else None,
        catalogue=catalogue,
        model=str(model) if model is not None else None,
        force_model=force_model,
        chunk_size=chunk_size,
        max_workers=max_workers or workers,
        checkpoint_interval=checkpoint_interval,
        validation_split=validation_split,
        split_by=split_by,
        seed=seed,
        success_threshold=success_threshold,
        force=force,
        log_dir=log_dir,
        show_progress=progress,
        engine=engine,
        address=address,
    )
    try:
        run = run_training(opts)
    except (CaseFileError, ResumeMismatchError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    _print_training(run, name)
    _write_json(report_json, run.report)


def _print_training(run: Any, name: str) -> None:
    """Unreadable rows (capped), what the session did, the split note and the report tables."""
    from nhs_lookup.framework.report import render_report

    info = run.dataset
    for e in info.errors[:20]:
        err.print(f"[yellow]skipped[/yellow] {e.source} row {e.row}: {e.message}")
    if len(info.errors) > 20:
        err.print(f"[yellow]... and {len(info.errors) - 20} more unreadable rows[/yellow]")
    if run.status == "already_completed":
        console.print(
            f"experiment [bold]{name}[/bold] already completed (session {run.session_id}, "
            f"{run.resumed_from} cases); showing its report. Use --force to run it again as a new session."
        )
    else:
        what = f"resumed after {run.resumed_from} cases" if run.resumed_from else "new session"
        console.print(
            f"session {run.session_id} ({what}): {run.processed_this_run} cases processed; log {run.log_path}"
        )
    if run.split_note:
        console.print(f"[dim]validation split: {run.split_note}[/dim]")
    if run.report:
        for table in render_report(run.report, title=f"Training report: {name}"):
            console.print(table)


# ---------------------------------------------------------------------------------------- optimize


def optimize(
    dataset: DatasetOpt = None,
    dataset_dir: DatasetDirOpt = None,
    experiment_name: Annotated[
        str | None,
        typer.Option(
            "--experiment-name",
            help="Name the run is recorded under (the Optuna study in --db, and its MLflow experiment); "
            "re-running the same name resumes it.",
            show_default="optimize-<file>-<strategy>",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Starting config (trial 0, and the baseline figures).",
            show_default="built-in defaults",
        ),
    ] = None,
    config_path: ConfigAliasOpt = None,
    max_experiments: Annotated[
        int, typer.Option("--max-experiments", min=1, help="Trials to run in this invocation.")
    ] = 25,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", help="tpe (Bayesian, default), random_search, or grid_search (the seed's grid)."
        ),
    ] = "tpe",
    catalogue: CatalogueOpt = None,
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="Optuna storage: SQLite path or SQLAlchemy URL (PostgreSQL to share a study between machines).",
        ),
    ] = "optimization_results.db",
    seed: SeedOpt = 0,
    validation_split: Annotated[
        float,
        typer.Option(
            "--validation-split", min=0.0, max=0.9, help="Share of labelled cases held out from tuning."
        ),
    ] = 0.3,
    split_by: SplitOpt = "source",
    early_stopping_threshold: EarlyStopOpt = None,
    patience: Annotated[
        int, typer.Option("--patience", min=0, help="Stop after N trials without improvement (0: off).")
    ] = 0,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop starting trials after this many seconds.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Processes that prepare (parse + retrieve) large case sets; default: CPU count.",
        ),
    ] = CPU_COUNT,
    max_workers: WorkersAliasOpt = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Where the best config is written (loadable by --config)."),
    ] = Path("optimized_config.yaml"),
    mlflow: MlflowOpt = True,
    mlflow_uri: MlflowUriOpt = None,
    create_study: CreateStudyOpt = False,
    join: JoinOpt = False,
    model: ModelOpt = None,
    force_model: ForceModelOpt = False,
    report_json: ReportOpt = None,
) -> None:
    """Tune the scoring weights with an Optuna study (TPE, random or the seed's grid).

    Parsing and retrieval run once per case; each trial only re-ranks. Objective: top-1 + 0.01 x MRR on the training split. The best and the starting configs are both reported on the held-out validation split, and the best is written to --output.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from nhs_lookup.framework import optimize as workflow

    if strategy not in workflow.STRATEGIES:
        raise _fail(f"unknown --strategy {strategy!r}; use one of {', '.join(workflow.STRATEGIES)}")
    if create_study and join:
        raise _fail("--create-study and --join exclude each other")
    config_path = config or config_path
    paths, catalogue = _datasets(dataset, dataset_dir, "dev_gold.json", catalogue)
    study_name = experiment_name or f"optimize-{Path(paths[0]).stem}-{strategy}"
    opts = workflow.OptimizeOptions(
        study_name=study_name,
        storage=db,
        strategy=strategy,
        max_experiments=max_experiments,
        seed=seed,
        early_stopping_threshold=early_stopping_threshold,
        patience=patience,
        timeout_s=timeout,
        max_workers=max_workers or workers,
        output=output,
        mlflow=mlflow,
        mlflow_uri=mlflow_uri,
        join=join,
    )
    if create_study:
        _create_study(opts, config_path, model)
        return
    job = workflow.OptimizeJob(
        paths, opts, catalogue, config_path, validation_split, split_by, model, force_model
    )
    result = _run_optimize(job, max_experiments)
    _print_optimize(result, study_name, strategy)
    _write_json(
        report_json,
        result.run.to_dict()
        | {"split": {"mode": result.plan.mode, "validation_sources": list(result.plan.validation_sources)}},
    )


def _create_study(opts: Any, config_path: Path | None, model: Path | None) -> None:
    """Create the shared study with its starting trials (the starting config: --model's, else --config's)."""
    import optuna

    from nhs_lookup.config import load_config
    from nhs_lookup.framework.optimize import create_shared_study

    try:
        if model is not None:
            from nhs_lookup.learning.model import load_model

            base = load_model(model).lookup_config().scoring
        else:
            base = load_config(config_path).scoring
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        create_shared_study(opts, base)
    except optuna.exceptions.DuplicatedStudyError as exc:
        raise _fail(f"study '{opts.study_name}' already exists in {opts.storage}") from exc
    console.print(
        f"created study [bold]{opts.study_name}[/bold] in {opts.storage}; start workers with --join"
    )


def _run_optimize(job: Any, max_experiments: int) -> Any:
    """Run the optimize workflow with a progress bar; input errors become exit code 2."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nhs_lookup.cases import CaseFileError
    from nhs_lookup.framework import optimize as workflow

    with Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("trials", total=max_experiments, best="-")

        def on_trial(number: int, value: float, best: float) -> None:
            progress.update(task, advance=1, best=f"{best:.4f}")

        try:
            return workflow.run(job, on_trial)
        except (CaseFileError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        except KeyError as exc:  # optuna.load_study on a missing study
            raise _fail(
                f"study '{job.study.study_name}' not found in {job.study.storage} (create it with --create-study)"
            ) from exc


def _print_optimize(result: Any, study_name: str, strategy: str) -> None:
    from rich.table import Table

    run, plan = result.run, result.plan
    for e in result.skipped_rows[:20]:
        err.print(f"[yellow]skipped[/yellow] {e.source} row {e.row}: {e.message}")
    console.print(
        f"{result.labelled} labelled cases: {result.train_cases} train, {result.validation_cases} validation"
        + (
            f" ({plan.note}: {', '.join(plan.validation_sources)})"
            if plan.validation_sources
            else f" ({plan.mode} split)"
        )
    )
    table = Table(title=f"Optimisation: {study_name} ({strategy})")
    for col in ("config", "split", "cases", "top-1", "top-5", "MRR"):
        table.add_column(col, justify="right" if col not in ("config", "split") else "left")
    for label, tr, va in (
        ("start", run.baseline_train, run.baseline_validation),
        ("best", run.best_train, run.best_validation),
    ):
        table.add_row(label, "train", str(tr.cases), _pct(tr.top1), _pct(tr.top5), f"{tr.mrr:.3f}")
        if va is not None:
            table.add_row(label, "validation", str(va.cases), _pct(va.top1), _pct(va.top5), f"{va.mrr:.3f}")
    console.print(table)
    tps = f"{run.trials_per_second:.1f} trials/s" if run.trials_per_second else "-"
    console.print(
        f"trials: {run.trials_this_run} this run, {run.trials_total} in the study ({tps}); best trial #{run.best_trial}; "
        f"stopped: {run.stopped_because}; prepare {run.prepare_s:.1f}s, search {run.optimize_s:.1f}s"
    )
    for note in run.notes:
        console.print(f"[dim]{note}[/dim]")
    if run.importances:
        imp = Table(title=f"Parameter importance ({run.importance_note})")
        imp.add_column("parameter")
        imp.add_column("importance", justify="right")
        for k, v in list(run.importances.items())[:10]:
            imp.add_row(k, f"{v:.3f}")
        console.print(imp)
    else:
        console.print(f"[dim]{run.importance_note}[/dim]")
    console.print(f"[dim]{run.mlflow_note}[/dim]")
    console.print(f"best config written to [bold]{run.output}[/bold] (use it with --config)")


# ---------------------------------------------------------------------------------------- validate
def validate(
    sanity_test_path: Annotated[
        Path | None,
        typer.Option(
            "--sanity-test-path",
            help="Labelled sanity set. Default: ../shared/nhs/sanity_gold.json if present, else the bundled sample.",
        ),
    ] = None,
    config: ConfigOpt = None,
    config_path: ConfigAliasOpt = None,
    catalogue: CatalogueOpt = None,
    min_accuracy: Annotated[
        float, typer.Option("--min-accuracy", help="Exit with code 1 when top-1 accuracy is below this.")
    ] = 0.8,
    show_failures: Annotated[int, typer.Option("--show-failures", help="How many failures to list.")] = 25,
    model: ModelOpt = None,
    force_model: ForceModelOpt = False,
    report_json: ReportOpt = None,
) -> None:
    """Sanity check: top-1/top-5, modality extraction, laterality/contrast agreement, preprocessing consistency, an overall score and the failures. Exit code 1 when top-1 < --min-accuracy (CI gate)."""
    from nhs_lookup.cases import CaseFileError
    from nhs_lookup.framework import validate as workflow

    paths, catalogue = _datasets(
        [sanity_test_path] if sanity_test_path else None, None, "sanity_gold.json", catalogue
    )
    opts = workflow.ValidateOptions(paths, catalogue, config or config_path, min_accuracy, model, force_model)
    try:
        run = workflow.run(opts)
    except (CaseFileError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    for e in run.errors[:20]:
        err.print(f"[yellow]skipped[/yellow] {e.source} row {e.row}: {e.message}")
    report = run.report
    _print_validation(report, paths[0], show_failures)
    _write_json(report_json, report.to_dict())
    if not report.passed:
        err.print(f"[red]FAILED[/red]: top-1 {_pct(report.top1)} is below --min-accuracy {min_accuracy:.0%}")
        raise typer.Exit(1)
    console.print(f"[green]passed[/green]: top-1 {_pct(report.top1)} >= {min_accuracy:.0%}")


def _print_validation(report: Any, path: Path, show_failures: int) -> None:
    from rich.table import Table

    from nhs_lookup.framework.validate import SCORE_WEIGHTS

    t = Table(title=f"Validation: {path}", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("cases (labelled)", f"{report.cases} ({report.labelled})")
    t.add_row("top-1 accuracy", _pct(report.top1))
    t.add_row("top-5 accuracy", _pct(report.top5))
    t.add_row("mean reciprocal rank", "-" if report.mrr is None else f"{report.mrr:.3f}")
    t.add_row(f"modality extraction accuracy ({report.modality_cases} cases)", _pct(report.modality_accuracy))
    t.add_row(f"laterality agreement ({report.agreement_cases} matched)", _pct(report.laterality_agreement))
    t.add_row(f"contrast agreement ({report.agreement_cases} matched)", _pct(report.contrast_agreement))
    t.add_row(
        f"preprocessing consistency ({report.consistency_groups} groups)",
        _pct(report.preprocessing_consistency),
    )
    t.add_row(
        "overall validation score", "-" if report.overall_score is None else f"{report.overall_score:.3f}"
    )
    console.print(t)
    console.print(f"[dim]score = {' + '.join(f'{w} x {k}' for k, w in SCORE_WEIGHTS.items())}[/dim]")
    if report.modality_by_code:
        m = Table(title="Modality extraction by RIS code")
        for col in ("RIS code", "canonical", "cases", "accuracy"):
            m.add_column(col)
        for code, v in report.modality_by_code.items():
            m.add_row(code, v["canonical"], str(v["cases"]), _pct(v["accuracy"]))
        console.print(m)
    if report.failures:
        f = Table(
            title=f"Failures ({len(report.failures)}; first {min(show_failures, len(report.failures))})"
        )
        for col in ("case", "exam name", "expected", "predicted", "conf", "rank"):
            f.add_column(col)
        for x in report.failures[:show_failures]:
            f.add_row(
                x.case_id or "",
                x.exam_name,
                x.expected,
                x.predicted or "(no match)",
                f"{x.confidence:.2f}",
                str(x.rank or "-"),
            )
        console.print(f)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``optimize`` and ``validate`` to *app*."""
    app.command("train")(train)
    app.command("optimize")(optimize)
    app.command("validate")(validate)
