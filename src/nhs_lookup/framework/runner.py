"""Chunked process-pool runner: the engine is built ONCE per worker, chunks stream through in order.

The parent never holds more than ``max_in_flight`` chunks; results come back in input order so the
parent can write them, and checkpoint, as a contiguous prefix of the data set.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from nhs_lookup.config import LookupConfig, config_from_dict
from nhs_lookup.records import Case
from nhs_lookup.workers import exit_with_parent

from .outcome import CaseOutcome, outcome_from_error, outcome_from_result

T = TypeVar("T")
R = TypeVar("R")

# One engine per worker process, built by the pool initializer.
_ENGINE: Any = None


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker needs to build the same engine as the parent (picklable)."""

    config: dict[str, Any]
    catalogue_path: str | None = None
    model_path: str | None = None  # a `nhs-lookup fit` model file: workers load the fitted engine
    force_model: bool = False

    @classmethod
    def of(
        cls,
        config: LookupConfig,
        catalogue_path: str | None,
        model_path: str | None = None,
        force_model: bool = False,
    ) -> EngineSpec:
        model = str(model_path) if model_path is not None else None
        return cls(config.to_dict(), catalogue_path, model, force_model)

    def build(self) -> Any:
        from nhs_lookup.engine import LookupEngine

        if self.model_path is not None:
            from nhs_lookup.learning.model import load_engine

            cache = self.config.get("cache_dir")
            engine, _ = load_engine(self.model_path, self.catalogue_path, cache, self.force_model)
            return engine
        return LookupEngine.load(config_from_dict(self.config), catalogue_path=self.catalogue_path)


def init_worker(spec: EngineSpec, parent_pid: int | None = None) -> None:
    """Pool initializer: die with the parent, then load the engine (catalogue from the disk cache)."""
    global _ENGINE
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    try:  # one BLAS/OpenMP thread per worker: the pool is the parallelism, not nested threads
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    _ENGINE = spec.build()


def worker_engine() -> Any:
    if _ENGINE is None:
        raise RuntimeError("worker engine not initialised (init_worker was not run)")
    return _ENGINE


Chunk = list[tuple[int, Case, str]]  # (case index, case, split)


def lookup_chunk(engine: Any, chunk: Chunk) -> list[CaseOutcome]:
    """Run the engine on one chunk (vectorised ``lookup_many``); if the batch fails, each case is
    retried alone so one bad case becomes an error outcome instead of failing its chunk."""
    start = time.perf_counter()
    try:
        results = engine.lookup_many([case.query for _, case, _ in chunk])
    except Exception:  # noqa: BLE001 - fall back to per-case lookups to isolate the failing case
        results = None
    if results is not None:
        per_case = (time.perf_counter() - start) * 1000 / max(1, len(chunk))
        return [
            outcome_from_result(index, case, result, split, per_case)
            for (index, case, split), result in zip(chunk, results, strict=True)
        ]
    out: list[CaseOutcome] = []
    for index, case, split in chunk:
        t0 = time.perf_counter()
        try:
            result = engine.lookup(case.query)
        except Exception as exc:  # noqa: BLE001 - per-case errors are data, reported in the store
            out.append(outcome_from_error(index, case, split, exc))
            continue
        out.append(outcome_from_result(index, case, result, split, (time.perf_counter() - t0) * 1000))
    return out


def process_chunk(chunk: Chunk) -> list[CaseOutcome]:
    """Pool task: the worker's engine on one chunk."""
    return lookup_chunk(worker_engine(), chunk)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of at most *size* items, lazily (the input may be a generator over a huge file)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def ordered_map(
    executor: Executor, fn: Callable[[T], R], items: Iterable[T], max_in_flight: int
) -> Iterator[R]:
    """``executor.map`` that submits lazily: at most *max_in_flight* tasks queued, results in order."""
    pending: deque = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= max_in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def make_pool(spec: EngineSpec, max_workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers each build the engine once and exit when this process dies (see
    :func:`exit_with_parent`). Uses ``fork`` where available (workers start in milliseconds and share
    the parent's imported modules)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(
        max_workers=max_workers, mp_context=context, initializer=init_worker, initargs=(spec, os.getpid())
    )


def prepare_chunk(queries: list[Any]) -> list[Any]:
    """Pool task: parse and retrieve candidates for a chunk of queries (config-independent, picklable)."""
    return _prepare_many(worker_engine(), queries)


def _prepare_many(engine: Any, queries: list[Any]) -> list[Any]:
    if hasattr(engine, "prepare_many"):
        return list(engine.prepare_many(queries))
    return [engine.prepare(q) for q in queries]


def prepare_all(
    engine: Any, queries: list[Any], spec: EngineSpec, max_workers: int, chunk_size: int = 200
) -> list[Any]:
    """``engine.prepare`` for every query; across a process pool when there are enough of them."""
    if max_workers <= 1 or len(queries) < 4 * chunk_size:
        return _prepare_many(engine, queries)
    out: list[Any] = []
    with make_pool(spec, max_workers) as pool:
        for part in ordered_map(pool, prepare_chunk, chunked(queries, chunk_size), 2 * max_workers):
            out.extend(part)
    return out
