"""Lookups in worker processes, so the service uses more than one core (the engine is pure Python
under the GIL; threads alone cannot run two lookups at once).

:class:`PooledEngine` looks like the engine (same ``lookup`` / ``lookup_many`` / ``search_catalogue``)
but runs lookups in a forked process pool whose workers inherit the already-loaded engine. Request
handlers and the job runner use it unchanged. The pool is forked once at start-up, before the service
starts its threads, and its workers exit with the server (kill -9 included). If a worker dies the pool
is retired and lookups continue in-process: a lost worker costs speed, never an answer.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nhs_lookup.records import CatalogueEntry, ExamQuery, LookupResult
from nhs_lookup.workers import exit_with_parent

log = logging.getLogger("nhs_lookup.service.pool")
_WORKER_ENGINE: Any = None  # set in each worker by the initializer (inherited through fork)


def _init(engine: Any, parent_pid: int) -> None:
    global _WORKER_ENGINE
    exit_with_parent(parent_pid)
    _WORKER_ENGINE = engine


def _lookup(query: ExamQuery, exclude: tuple[str, ...]) -> LookupResult:
    return _WORKER_ENGINE.lookup(query, exclude=exclude)


def _lookup_many(queries: list[ExamQuery]) -> list[LookupResult]:
    return _WORKER_ENGINE.lookup_many(queries)


def _ready() -> int:
    return os.getpid()


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class PooledEngine:
    """The engine's interface, with lookups in *workers* forked processes (see the module docstring)."""

    def __init__(self, engine: Any, workers: int) -> None:
        if workers < 1 or not fork_available():
            raise ValueError("a lookup pool needs at least one worker and the 'fork' start method")
        self.engine = engine
        self.config = engine.config
        self.catalogue = engine.catalogue
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init,
            initargs=(engine, os.getpid()),
        )
        # With 'fork' every worker starts at the first submit: do it now, before the server has threads.
        pids = {f.result() for f in [self._pool.submit(_ready) for _ in range(workers)]}
        log.info("lookup pool: %d worker process(es) %s", workers, sorted(pids))

    @property
    def pooled(self) -> bool:
        return self._pool is not None

    def _run(self, fn: Any, *args: Any) -> Any:
        pool = self._pool
        if pool is not None:
            try:
                return pool.submit(fn, *args).result()
            except BrokenProcessPool:
                self._retire("a lookup worker died")
        if fn is _lookup:
            return self.engine.lookup(args[0], exclude=args[1])
        return self.engine.lookup_many(args[0])

    def _retire(self, why: str) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            log.error("%s: lookups continue in the server process", why)
            pool.shutdown(wait=False, cancel_futures=True)

    def lookup(
        self, query: ExamQuery | str, *, modality_code: str | None = None, exclude: Collection[str] = ()
    ) -> LookupResult:
        if isinstance(query, str):
            query = ExamQuery(exam_name=query, modality_code=modality_code)
        return self._run(_lookup, query, tuple(exclude))

    def lookup_many(self, queries: Iterable[ExamQuery]) -> list[LookupResult]:
        return self._run(_lookup_many, list(queries))

    def search_catalogue(self, text: str, limit: int = 20) -> list[CatalogueEntry]:
        return self.engine.search_catalogue(text, limit)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
