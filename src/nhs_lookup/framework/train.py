"""``nhs-lookup train``: run the engine over a large case set with workers, a result store and resume.

Flow: a cheap first pass counts cases and sources (for the split and the ETA) and fingerprints the
files; cases then stream in chunks through a process pool (engine built once per worker); the parent
commits results in checkpoint-sized transactions together with the checkpoint row. Re-running the
same experiment name continues after the last checkpoint; a finished one is reported, not redone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhs_lookup.config import LookupConfig
from nhs_lookup.records import Case, CaseError

from .dataset import DatasetInfo, expand_paths, iter_dataset, scan_dataset
from .logfile import close_run_log, open_run_log
from .outcome import CaseOutcome
from .paths import LOG_DIR
from .report import build_report, running_metrics
from .runner import EngineSpec, chunked, make_pool, ordered_map, process_chunk
from .split import SplitPlan, plan_split
from .store import TrainingStore
from .versions import collect_versions


class ResumeMismatchError(RuntimeError):
    """The experiment exists but was started on different case files."""


@dataclass
class TrainOptions:
    datasets: list[Path]
    experiment_name: str
    db: str
    config: LookupConfig = field(default_factory=LookupConfig)
    config_path: str | None = None
    catalogue: str | None = None
    model: str | None = None  # `nhs-lookup fit` model file: every worker loads the fitted engine
    force_model: bool = False
    chunk_size: int = 1000
    max_workers: int = 4
    checkpoint_interval: int = 2500
    validation_split: float = 0.1
    split_by: str = "source"
    seed: int = 0
    success_threshold: float | None = None  # None: config.confident_threshold
    force: bool = False
    log_dir: Path = LOG_DIR
    show_progress: bool = True
    engine: str = "local"  # local (process pool) | ray (chunks as Ray tasks; framework/ray_runner.py)
    address: str | None = None  # --engine ray: the cluster to join; None starts a local Ray


@dataclass
class TrainRun:
    """What happened: the session, whether it resumed or was already complete, and its report."""

    session_id: int
    status: str  # completed | already_completed
    resumed_from: int  # cases already processed when this run started
    processed_this_run: int
    report: dict[str, Any]
    log_path: Path | None
    split_note: str
    dataset: DatasetInfo


def _params(opts: TrainOptions, info: DatasetInfo, plan: SplitPlan) -> dict[str, Any]:
    return {
        "datasets": list(info.files),
        "dataset_fingerprint": info.fingerprint,
        "catalogue": opts.catalogue,
        "config_path": opts.config_path,
        "model": opts.model,
        "chunk_size": opts.chunk_size,
        "max_workers": opts.max_workers,
        "checkpoint_interval": opts.checkpoint_interval,
        "split": {
            "mode": plan.mode,
            "fraction": plan.fraction,
            "seed": plan.seed,
            "validation_sources": list(plan.validation_sources),
            "note": plan.note,
        },
        "success_threshold": _threshold(opts),
    }


def _threshold(opts: TrainOptions) -> float:
    return opts.config.confident_threshold if opts.success_threshold is None else opts.success_threshold


def _plan_from_params(params: dict[str, Any]) -> SplitPlan:
    s = params["split"]
    return SplitPlan(s["mode"], s["fraction"], s["seed"], tuple(s["validation_sources"]), s.get("note", ""))


def _work(
    files: list[Path], plan: SplitPlan, start: int, errors: list[CaseError]
) -> Iterator[tuple[int, Case, str]]:
    for index, case in enumerate(iter_dataset(files, errors)):
        if index >= start:
            yield index, case, plan.assign(index, case)


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} cases/s"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


@contextmanager
def _chunk_mapper(
    opts: TrainOptions, spec: EngineSpec
) -> Iterator[Callable[[Any], Iterator[list[CaseOutcome]]]]:
    """chunks -> outcome lists in input order: a local process pool, or Ray tasks (``--engine ray``)."""
    if opts.engine == "ray":
        from .ray_runner import RayChunkMap  # Ray is imported only on this path

        with RayChunkMap(spec, opts.address, opts.max_workers) as ray_map:
            yield ray_map
        return
    with make_pool(spec, opts.max_workers) as pool:
        yield lambda chunks: ordered_map(pool, process_chunk, chunks, max_in_flight=2 * opts.max_workers)


def run_training(opts: TrainOptions) -> TrainRun:
    """Run (or resume) one training session and return its report. Raises on unusable input."""
    if opts.chunk_size < 1 or opts.max_workers < 1 or opts.checkpoint_interval < 1:
        raise ValueError("--chunk-size, --max-workers and --checkpoint-interval must be at least 1")
    if opts.engine not in ("local", "ray"):
        raise ValueError(f"unknown --engine {opts.engine!r}: use local or ray")
    if opts.engine == "ray":
        from radqc_common.raytools import import_ray

        import_ray()  # a missing Ray is a one-line error before any work
    files = expand_paths(opts.datasets)
    info = scan_dataset(files)
    if opts.model is not None:
        check_model(opts)
    store = TrainingStore(opts.db)
    try:
        return _run(opts, files, info, store)
    finally:
        store.close()


def check_model(opts: TrainOptions) -> None:
    """Refuse an unusable --model here (unreadable, or fitted on another catalogue), not in every worker.
    Raises ``ValueError`` (``ModelError``, ``CatalogueError``) with the reason."""
    from nhs_lookup.catalogue import load_catalogue
    from nhs_lookup.learning.model import ModelError, check_catalogue, load_model

    model = load_model(opts.model or "")
    path = opts.catalogue or model.catalogue.get("path") or None
    if path and not Path(path).is_file():
        raise ModelError(f"the model's catalogue {path} is not there; pass --catalogue")
    check_catalogue(model, load_catalogue(path, opts.config.cache_dir), opts.force_model)


def _run(opts: TrainOptions, files: list[Path], info: DatasetInfo, store: TrainingStore) -> TrainRun:
    existing = store.latest_session(opts.experiment_name)
    if existing is not None and not opts.force:
        if existing.status == "completed":
            return TrainRun(
                session_id=existing.id,
                status="already_completed",
                resumed_from=existing.processed_cases,
                processed_this_run=0,
                report=existing.metrics or {},
                log_path=None,
                split_note=existing.params["split"].get("note", ""),
                dataset=info,
            )
        if existing.params.get("dataset_fingerprint") != info.fingerprint:
            raise ResumeMismatchError(
                f"experiment '{opts.experiment_name}' (session {existing.id}, {existing.status}) was started on "
                f"different case files {existing.params.get('datasets')}; use another --experiment-name, "
                "or --force to start a new session under this name"
            )
        session_id = existing.id
        plan = _plan_from_params(existing.params)
        threshold = existing.params.get("success_threshold", _threshold(opts))
        checkpoint_number, done = store.last_checkpoint(session_id)
        store.set_status(session_id, "running")
    else:
        plan = plan_split(opts.split_by, opts.validation_split, opts.seed, info.source_counts)
        threshold = _threshold(opts)
        versions = collect_versions(opts.catalogue)
        session_id = store.create_session(
            opts.experiment_name, opts.config.to_dict(), _params(opts, info, plan), versions, info.total_cases
        )
        checkpoint_number, done = 0, 0

    logger, log_path = open_run_log(opts.log_dir)
    logger.info(
        "session %s experiment=%s files=%s cases=%d start_at=%d workers=%d chunk=%d checkpoint_every=%d split=%s",
        session_id, opts.experiment_name, list(info.files), info.total_cases, done,
        opts.max_workers, opts.chunk_size, opts.checkpoint_interval, plan,
    )  # fmt: skip
    for e in info.errors:
        logger.warning("unreadable case row %s:%d: %s", e.source, e.row, e.message)

    errors: list[CaseError] = []  # already known from the scan; re-collected while streaming
    processed = committed = done
    pending: list[CaseOutcome] = []  # outcomes of cases [committed, processed)
    next_boundary = (done // opts.checkpoint_interval + 1) * opts.checkpoint_interval
    started = time.perf_counter()
    status = "failed"

    def commit(upto: int) -> None:
        nonlocal pending, checkpoint_number, committed
        batch, pending = pending[: upto - committed], pending[upto - committed :]
        committed = upto
        checkpoint_number += 1
        store.commit_checkpoint(session_id, batch, checkpoint_number, upto, running_metrics(batch))
        logger.info("checkpoint %d: %d/%d cases processed", checkpoint_number, upto, info.total_cases)

    store.engine.dispose()  # no open database connection is inherited by forked workers
    spec = EngineSpec.of(opts.config, opts.catalogue, opts.model, opts.force_model)
    try:
        with _chunk_mapper(opts, spec) as run_chunks, _progress(opts.show_progress) as progress:
            task = progress.add_task(opts.experiment_name, total=info.total_cases, completed=done, rate="-")
            chunks = chunked(_work(files, plan, done, errors), opts.chunk_size)
            for outcomes in run_chunks(chunks):
                pending.extend(outcomes)
                processed += len(outcomes)
                while processed >= next_boundary:
                    commit(next_boundary)
                    next_boundary += opts.checkpoint_interval
                rate = (processed - done) / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=processed, rate=f"{rate:,.0f}")
        if pending or checkpoint_number == 0:
            commit(processed)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        elapsed = time.perf_counter() - started
        if status != "completed":
            store.set_status(session_id, status)
            logger.error("session %s %s after %d cases (resume by re-running)", session_id, status, processed)
            close_run_log(logger)

    store.record_file_errors(session_id, info.errors)
    report = build_report(store.iter_outcomes(session_id), threshold)
    report.file_errors = len(info.errors)
    report.elapsed_s = elapsed
    report.cases_per_second = (processed - done) / elapsed if elapsed > 0 and processed > done else None
    report_dict = report.to_dict()
    report_dict["session_id"] = session_id
    report_dict["experiment_name"] = opts.experiment_name
    report_dict["resumed_from"] = done
    report_dict["split"] = {
        "mode": plan.mode,
        "validation_sources": list(plan.validation_sources),
        "note": plan.note,
    }
    store.set_status(session_id, "completed", report_dict)
    logger.info("session %s completed: %s", session_id, json.dumps(report_dict))
    close_run_log(logger)
    return TrainRun(
        session_id=session_id,
        status="completed",
        resumed_from=done,
        processed_this_run=processed - done,
        report=report_dict,
        log_path=log_path,
        split_note=plan.note,
        dataset=info,
    )
