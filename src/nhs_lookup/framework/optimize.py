"""``nhs-lookup optimize``: tune the scoring configuration with an Optuna study.

Parsing and candidate retrieval are done ONCE per case (``engine.prepare``); each trial only re-ranks
the prepared candidates with its :class:`ScoringConfig` (``engine.rank``), so a trial over a few hundred
cases costs milliseconds. The objective is top-1 accuracy on the TRAINING split (ties broken by MRR:
``top1 + 0.01 * MRR``); the best configuration and the starting one are then both measured on a
validation split the study never sees. Early stopping also looks at the training objective only.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhs_lookup.config import ComponentWeights, FinalWeights, LookupConfig, ScoringConfig, save_config
from nhs_lookup.metrics import group_stats, outcome_of
from nhs_lookup.records import Case

STRATEGIES = ("tpe", "random_search", "grid_search")
COMPONENT_KEYS = tuple(f.name for f in dataclasses.fields(ComponentWeights))
FINAL_KEYS = tuple(f.name for f in dataclasses.fields(FinalWeights))
# Search ranges of the scalar scoring parameters (the seed's keys).
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "interventional_bonus": (0.0, 0.4),
    "interventional_penalty": (-0.5, 0.0),
    "specificity_penalty_weight": (0.0, 0.2),
    "exact_match_bonus": (0.0, 0.5),
    "synonym_match_bonus": (0.0, 0.4),
    "context_match_bonus": (0.0, 0.3),
    "contrast_mismatch_score": (0.0, 0.7),
    "contrast_null_score": (0.3, 1.0),
}
TOP_K_CHOICES = (10, 15, 25, 50, 100)
# The seed optimiser's grid (doc section 1.10); combinations with anatomy+modality+contrast > 0.8 are skipped.
SEED_GRID: dict[str, tuple[float, ...]] = {
    "anatomy": (0.25, 0.30, 0.35, 0.40, 0.45),
    "modality": (0.20, 0.25, 0.30, 0.35),
    "contrast": (0.10, 0.15, 0.20),
    "semantic": (0.30, 0.35, 0.40, 0.45),
    "interventional_penalty": (-0.10, -0.15, -0.20, -0.25, -0.30),
    "exact_match_bonus": (0.15, 0.20, 0.25, 0.30),
}
OBJECTIVE_MRR_WEIGHT = 0.01


@dataclass(frozen=True)
class SplitScore:
    """Accuracy of one scoring configuration on one set of labelled cases."""

    cases: int
    top1: float
    top5: float
    mrr: float

    @property
    def objective(self) -> float:
        return self.top1 + OBJECTIVE_MRR_WEIGHT * self.mrr


@dataclass
class OptimizeOptions:
    study_name: str = "nhs-lookup-optimize"
    storage: str = "optimization_results.db"
    strategy: str = "tpe"
    max_experiments: int = 25
    seed: int = 0
    early_stopping_threshold: float | None = None  # None: run every trial
    patience: int = 0  # 0: off
    timeout_s: float | None = None
    max_workers: int = 1
    output: Path = Path("optimized_config.yaml")
    mlflow: bool = True
    mlflow_uri: str | None = None  # None: $MLFLOW_TRACKING_URI or sqlite:///./mlruns/mlflow.db
    join: bool = False  # load an existing (shared) study instead of creating it


@dataclass
class OptimizeRun:
    """The outcome of one ``optimize`` invocation."""

    study_name: str
    storage: str
    strategy: str
    trials_total: int
    trials_this_run: int
    trials_per_second: float | None
    best_trial: int
    best_params: dict[str, Any]
    best_scoring: dict[str, Any]
    baseline_train: SplitScore
    baseline_validation: SplitScore | None
    best_train: SplitScore
    best_validation: SplitScore | None
    importances: dict[str, float]
    importance_note: str
    stopped_because: str
    output: Path | None
    prepare_s: float
    optimize_s: float
    mlflow_note: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output"] = str(self.output) if self.output else None
        for key in ("baseline_train", "baseline_validation", "best_train", "best_validation"):
            score = getattr(self, key)
            if score is not None:
                d[key]["objective"] = round(score.objective, 6)
        return d


# -- scoring <-> parameters ------------------------------------------------------------------------
def _normalise(raw: dict[str, float]) -> dict[str, float]:
    total = sum(max(0.0, v) for v in raw.values())
    if total <= 0:
        return {k: 1.0 / len(raw) for k in raw}
    return {k: max(0.0, v) / total for k, v in raw.items()}


def scoring_from_params(params: dict[str, Any], base: ScoringConfig) -> ScoringConfig:
    """Build a scoring config from trial parameters; weight groups are normalised to sum to 1.

    Parameters absent from *params* keep the *base* value (so grid trials can fix a subset).
    """
    s = copy.deepcopy(base)
    comp = {k: params.get(f"w_component.{k}", getattr(base.weights_component, k)) for k in COMPONENT_KEYS}
    final = {k: params.get(f"w_final.{k}", getattr(base.weights_final, k)) for k in FINAL_KEYS}
    s.weights_component = ComponentWeights(**_normalise(comp))
    s.weights_final = FinalWeights(**_normalise(final))
    for key in FLOAT_RANGES:
        if key in params:
            setattr(s, key, float(params[key]))
    if "retriever_top_k" in params:
        s.retriever_top_k = int(params["retriever_top_k"])
    return s


def params_from_scoring(s: ScoringConfig) -> dict[str, Any]:
    """The trial parameters that reproduce *s* (clamped into the search ranges)."""
    params: dict[str, Any] = {}
    for k in COMPONENT_KEYS:
        params[f"w_component.{k}"] = min(1.0, max(0.0, getattr(s.weights_component, k)))
    for k in FINAL_KEYS:
        params[f"w_final.{k}"] = min(1.0, max(0.0, getattr(s.weights_final, k)))
    for key, (lo, hi) in FLOAT_RANGES.items():
        params[key] = min(hi, max(lo, float(getattr(s, key))))
    params["retriever_top_k"] = min(TOP_K_CHOICES, key=lambda k: abs(k - s.retriever_top_k))
    return params


def suggest_params(trial: Any) -> dict[str, Any]:
    """The search space: raw weights in [0, 1] (normalised later), scalar ranges, top-k choices."""
    params: dict[str, Any] = {}
    for k in COMPONENT_KEYS:
        params[f"w_component.{k}"] = trial.suggest_float(f"w_component.{k}", 0.0, 1.0)
    for k in FINAL_KEYS:
        params[f"w_final.{k}"] = trial.suggest_float(f"w_final.{k}", 0.0, 1.0)
    for key, (lo, hi) in FLOAT_RANGES.items():
        params[key] = trial.suggest_float(key, lo, hi)
    params["retriever_top_k"] = trial.suggest_categorical("retriever_top_k", TOP_K_CHOICES)
    return params


def seed_grid(max_experiments: int, base: ScoringConfig) -> list[dict[str, Any]]:
    """The seed's grid in our parameter space, thinned by a stride to *max_experiments* points.

    Laterality gets 60% and technique 40% of ``1 - (anatomy + modality + contrast)``; the final
    weights are ``component = 1 - semantic``, ``frequency = 0``; everything else keeps *base*.
    """
    points: list[dict[str, Any]] = []
    for a, m, c, sem, pen, exact in itertools.product(*SEED_GRID.values()):
        rest = 1.0 - (a + m + c)
        if rest < -1e-9 or a + m + c > 0.80 + 1e-9:
            continue
        p = params_from_scoring(base)
        p.update(
            {
                "w_component.anatomy": a,
                "w_component.modality": m,
                "w_component.contrast": c,
                "w_component.laterality": round(0.6 * rest, 6),
                "w_component.technique": round(0.4 * rest, 6),
                "w_final.component": round(1.0 - sem, 6),
                "w_final.semantic": sem,
                "w_final.frequency": 0.0,
                "interventional_penalty": pen,
                "exact_match_bonus": exact,
            }
        )
        points.append(p)
    stride = max(1, math.ceil(len(points) / max(1, max_experiments)))
    return points[::stride][:max_experiments]


# -- evaluation --------------------------------------------------------------------------------------
def score_prepared(engine: Any, prepared: Sequence[tuple[Case, Any]], scoring: ScoringConfig) -> SplitScore:
    """Re-rank prepared cases with *scoring* and measure top-1 / top-5 / MRR."""
    g = group_stats(outcome_of(case, engine.rank(prep, scoring)) for case, prep in prepared)
    if g.labelled == 0:
        return SplitScore(0, 0.0, 0.0, 0.0)
    return SplitScore(g.labelled, g.top1_accuracy or 0.0, g.top5_accuracy or 0.0, g.mrr or 0.0)


# -- study -------------------------------------------------------------------------------------------
def make_sampler(strategy: str, seed: int) -> Any:
    import optuna

    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if strategy in ("random_search", "grid_search"):  # grid points are enqueued; random fills any gap
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def open_study(opts: OptimizeOptions, *, create_only: bool = False) -> Any:
    """Create (or resume) the study in RDB storage; with ``join`` only load an existing one.

    Several processes sharing a study: create it first (``--create-study``), then start the
    workers with ``--join`` so no two processes race to create it.
    """
    import optuna

    from nhs_lookup.storage.engine import database_url

    from .store import add_sqlite_pragmas

    storage = optuna.storages.RDBStorage(database_url(opts.storage))
    add_sqlite_pragmas(storage.engine)
    sampler = make_sampler(opts.strategy, opts.seed)
    if opts.join:
        return optuna.load_study(study_name=opts.study_name, storage=storage, sampler=sampler)
    return optuna.create_study(
        study_name=opts.study_name,
        storage=storage,
        sampler=sampler,
        direction="maximize",
        load_if_exists=not create_only,
    )


class EarlyStopping:
    """Stop the study when the best training top-1 reaches *threshold* (``None``: never), or after
    *patience* completed trials without improving the objective (patience 0: never)."""

    def __init__(self, threshold: float | None, patience: int) -> None:
        self.threshold = threshold
        self.patience = patience
        self.best = -math.inf
        self.since_best = 0
        self.reason = "trial budget used"

    def __call__(self, study: Any, trial: Any) -> None:
        import optuna

        if trial.state != optuna.trial.TrialState.COMPLETE or trial.value is None:
            return
        if trial.value > self.best + 1e-12:
            self.best = trial.value
            self.since_best = 0
        else:
            self.since_best += 1
        if self.threshold is not None and trial.user_attrs.get("train_top1", 0.0) >= self.threshold:
            self.reason = f"training top-1 {trial.user_attrs['train_top1']:.3f} >= early-stopping threshold {self.threshold}"
            study.stop()
        elif self.patience and self.since_best >= self.patience:
            self.reason = f"no improvement in {self.patience} trials (patience)"
            study.stop()


# MLflow 3's UI opens experiments in its GenAI view unless they are marked as model development.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlruns/mlflow.db``: the one store per working
    directory that ``echoquality train`` uses too (a plain-file store in the same folder would clash)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = (Path.cwd() / "mlruns").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a new experiment on a SQLite store go to ``mlruns/artifacts`` beside the database."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts").resolve().as_uri()


class MlflowTrialLogger:
    """Log the study to MLflow: one run per invocation, each trial's scores as a metric step
    (one ``log_batch`` call per trial: cheap), then the best parameters, the config and a CSV of
    every trial's parameters as artifacts."""

    def __init__(self, experiment: str, tracking_uri: str | None, tags: dict[str, str]) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(
                experiment, artifact_location=_artifact_location(self.tracking_uri), tags=EXPERIMENT_TAGS
            )
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_name=f"optimize study {experiment}", tags=tags)
        self.client = MlflowClient()

    def __call__(self, study: Any, trial: Any) -> None:
        from mlflow.entities import Metric

        if trial.value is None:
            return
        ts = int(time.time() * 1000)
        values = {
            "objective": trial.value,
            **{k: v for k, v in trial.user_attrs.items() if isinstance(v, float)},
        }
        metrics = [Metric(k, float(v), ts, trial.number) for k, v in values.items()]
        self.client.log_batch(self.run.info.run_id, metrics=metrics)

    def finish(self, study: Any, summary: dict[str, float], artifact: Path | None) -> None:
        import tempfile

        self.mlflow.log_params({f"best.{k}": v for k, v in study.best_params.items()})
        self.mlflow.log_metrics(summary)
        if artifact is not None and artifact.is_file():
            self.mlflow.log_artifact(str(artifact))
        try:
            frame = study.trials_dataframe()  # needs pandas
        except ImportError:
            frame = None
        if frame is not None:
            with tempfile.TemporaryDirectory() as tmp:
                table = Path(tmp) / "trials.csv"
                frame.to_csv(table, index=False)
                self.mlflow.log_artifact(str(table))
        self.mlflow.end_run()


def _importances(study: Any) -> tuple[dict[str, float], str]:
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 3:
        return {}, "too few completed trials for parameter importances"
    if len({t.value for t in complete}) < 2:
        return {}, "every trial scored the same: no parameter importance to measure"
    try:
        imp = optuna.importance.get_param_importances(study)
    except Exception as exc:  # noqa: BLE001 - importances are a nice-to-have; report why they are missing
        return {}, f"parameter importances unavailable ({type(exc).__name__}: {exc})"
    return {k: round(float(v), 4) for k, v in imp.items()}, "fANOVA importances (optuna.importance)"


def create_shared_study(opts: OptimizeOptions, base: ScoringConfig) -> Any:
    """``--create-study``: the study with its starting trials queued once (``--join`` never queues them, so
    workers joining together cannot each run the starting config). Raises ``DuplicatedStudyError``."""
    study = open_study(opts, create_only=True)
    _enqueue_trials(study, dataclasses.replace(opts, join=False), base)
    return study


def _enqueue_trials(study: Any, opts: OptimizeOptions, base: ScoringConfig) -> tuple[int, list[str]]:
    """Queue the grid points not yet run (grid search), or the starting config as trial 0; with ``join``
    nothing (:func:`create_shared_study` did)."""
    notes: list[str] = []
    if opts.join:
        return opts.max_experiments, notes
    if opts.strategy == "grid_search":
        seen = {tuple(sorted(t.params.items())) for t in study.trials}
        todo = [p for p in seed_grid(opts.max_experiments, base) if tuple(sorted(p.items())) not in seen]
        for p in todo:
            study.enqueue_trial(p)
        if not todo:
            notes.append("every grid point of this study has already been evaluated")
        return len(todo), notes
    if not study.trials:
        study.enqueue_trial(params_from_scoring(base))  # trial 0 = the starting config
    return opts.max_experiments, notes


def _callbacks(
    opts: OptimizeOptions,
    stopper: EarlyStopping,
    tags: dict[str, str] | None,
    on_trial: Callable[[int, float, float], None] | None,
) -> tuple[list[Any], MlflowTrialLogger | None, str]:
    """Study callbacks: early stopping, MLflow logging (when available), progress reports."""
    callbacks: list[Any] = [stopper]
    mlflow_logger: MlflowTrialLogger | None = None
    mlflow_note = "MLflow logging off (--no-mlflow)"
    if opts.mlflow:
        try:
            mlflow_logger = MlflowTrialLogger(opts.study_name, opts.mlflow_uri, tags or {})
            callbacks.append(mlflow_logger)
            mlflow_note = (
                f"MLflow runs logged to {mlflow_logger.tracking_uri} "
                f"(view: mlflow ui --backend-store-uri {mlflow_logger.tracking_uri})"
            )
        except Exception as exc:  # noqa: BLE001 - MLflow is optional
            mlflow_note = f"MLflow unavailable ({type(exc).__name__}: {exc}); trials not logged there"
    if on_trial is not None:

        def _report(study: Any, trial: Any) -> None:
            if trial.value is not None:
                on_trial(trial.number, trial.value, study.best_value)

        callbacks.append(_report)

    return callbacks, mlflow_logger, mlflow_note


def run_optimization(
    engine: Any,
    train_cases: Sequence[Case],
    validation_cases: Sequence[Case],
    base_config: LookupConfig,
    opts: OptimizeOptions,
    *,
    prepare: Callable[[list[Any]], list[Any]] | None = None,
    on_trial: Callable[[int, float, float], None] | None = None,
    tags: dict[str, str] | None = None,
) -> OptimizeRun:
    """Run the study on *train_cases*; measure the start and best configs on both splits.

    *prepare* maps a list of queries to prepared queries (default: ``engine.prepare`` in-process;
    the command passes a process-pool version). *on_trial(number, value, best)* reports progress.
    """
    import optuna

    if opts.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {opts.strategy!r}; use one of {', '.join(STRATEGIES)}")
    if not train_cases:
        raise ValueError("no labelled training cases to optimise on")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    t0 = time.perf_counter()
    queries = [c.query for c in train_cases] + [c.query for c in validation_cases]
    prepared_all = prepare(queries) if prepare else [engine.prepare(q) for q in queries]
    train = list(zip(train_cases, prepared_all[: len(train_cases)], strict=True))
    validation = list(zip(validation_cases, prepared_all[len(train_cases) :], strict=True))
    prepare_s = time.perf_counter() - t0

    base = base_config.scoring
    study = open_study(opts)
    previous = len(study.trials)
    n_trials, notes = _enqueue_trials(study, opts, base)

    def objective(trial: Any) -> float:
        scoring = scoring_from_params(suggest_params(trial), base)
        score = score_prepared(engine, train, scoring)
        trial.set_user_attr("train_top1", score.top1)
        trial.set_user_attr("train_top5", score.top5)
        trial.set_user_attr("train_mrr", score.mrr)
        return score.objective

    stopper = EarlyStopping(opts.early_stopping_threshold, opts.patience)
    callbacks, mlflow_logger, mlflow_note = _callbacks(opts, stopper, tags, on_trial)

    t1 = time.perf_counter()
    if n_trials:
        study.optimize(objective, n_trials=n_trials, timeout=opts.timeout_s, callbacks=callbacks, catch=())
    optimize_s = time.perf_counter() - t1
    done = len(study.trials) - previous

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError("the study has no completed trial")
    best = study.best_trial
    best_scoring = scoring_from_params(best.params, base)
    result_config = copy.deepcopy(base_config)
    result_config.scoring = best_scoring
    save_config(result_config, opts.output)
    importances, importance_note = _importances(study)

    run = OptimizeRun(
        study_name=opts.study_name,
        storage=opts.storage,
        strategy=opts.strategy,
        trials_total=len(study.trials),
        trials_this_run=done,
        trials_per_second=done / optimize_s if done and optimize_s > 0 else None,
        best_trial=best.number,
        best_params=dict(best.params),
        best_scoring=dataclasses.asdict(best_scoring),
        baseline_train=score_prepared(engine, train, base),
        baseline_validation=score_prepared(engine, validation, base) if validation else None,
        best_train=score_prepared(engine, train, best_scoring),
        best_validation=score_prepared(engine, validation, best_scoring) if validation else None,
        importances=importances,
        importance_note=importance_note,
        stopped_because=stopper.reason if done else "no new trial run",
        output=opts.output,
        prepare_s=prepare_s,
        optimize_s=optimize_s,
        mlflow_note=mlflow_note,
        notes=notes,
    )
    if mlflow_logger is not None:
        summary = {"best_train_top1": run.best_train.top1, "baseline_train_top1": run.baseline_train.top1}
        if run.best_validation is not None and run.baseline_validation is not None:
            summary |= {
                "best_validation_top1": run.best_validation.top1,
                "baseline_validation_top1": run.baseline_validation.top1,
            }
        mlflow_logger.finish(study, summary, opts.output)
    return run


# -- workflow ----------------------------------------------------------------------------------------
@dataclass
class OptimizeJob:
    """What ``nhs-lookup optimize`` needs besides the study options (the command parses, then prints)."""

    paths: list[Path]
    study: OptimizeOptions
    catalogue: str | None = None
    config_path: Path | None = None
    validation_split: float = 0.3
    split_by: str = "source"
    model: Path | None = None  # start from a fitted model's engine (learned terms, calibration)
    force_model: bool = False


@dataclass
class OptimizeResult:
    run: OptimizeRun
    plan: Any  # SplitPlan
    labelled: int
    train_cases: int
    validation_cases: int
    skipped_rows: list[Any]


def load_labelled(paths: Sequence[Path]) -> tuple[list[Case], list[Any]]:
    """Labelled cases of the files (``CaseFileError`` for an unreadable file, ``ValueError`` for none)."""
    from nhs_lookup.cases import load_cases

    from .dataset import expand_paths

    cases, errors = load_cases(expand_paths(paths))
    labelled = [c for c in cases if c.labelled]
    if not labelled:
        raise ValueError(
            "the data set has no labelled cases (needs 'acceptable' or 'no_match'); nothing to optimise"
        )
    return labelled, errors


def run(job: OptimizeJob, on_trial: Callable[[int, float, float], None] | None = None) -> OptimizeResult:
    """Load and split the cases, build the engine, run the study. Raises ``ValueError`` /
    ``CaseFileError`` for bad input and ``KeyError`` for a missing study with ``join``."""
    from collections import Counter

    from nhs_lookup.config import load_config

    from .runner import EngineSpec, prepare_all
    from .split import plan_split, source_of, split_cases
    from .validate import build_engine

    config = load_config(job.config_path)
    labelled, errors = load_labelled(job.paths)
    plan = plan_split(
        job.split_by, job.validation_split, job.study.seed, Counter(source_of(c) for c in labelled)
    )
    train_cases, val_cases = split_cases(labelled, plan)
    engine = build_engine(job.catalogue, job.config_path, job.model, job.force_model)
    config = engine.config if job.model is not None else config
    workers = job.study.max_workers
    spec = EngineSpec.of(config, job.catalogue, job.model, job.force_model)  # workers load the model too
    result = run_optimization(
        engine,
        train_cases,
        val_cases,
        config,
        job.study,
        prepare=lambda qs: prepare_all(engine, qs, spec, workers),
        on_trial=on_trial,
        tags={
            "strategy": job.study.strategy,
            "dataset": ",".join(map(str, job.paths)),
            "catalogue": str(job.catalogue),
            "split": plan.note or plan.mode,
        },
    )
    return OptimizeResult(result, plan, len(labelled), len(train_cases), len(val_cases), list(errors))
