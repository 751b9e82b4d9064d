"""``nhs-lookup train --engine ray``: chunks as Ray tasks, results back in input order.

Each Ray worker process builds the engine once (cached per :class:`EngineSpec`) and runs
:func:`lookup_chunk` on the chunks it is given. Results are yielded in input order, so the caller
commits them through the same store, checkpoints and resume rules as the local process pool. A task
whose worker or node dies is re-run by Ray (``max_retries``); nothing is committed twice because only
the parent commits, and it commits each chunk once. Imported only for ``--engine ray``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .outcome import CaseOutcome
from .runner import Chunk, EngineSpec, lookup_chunk

RAY_MISSING = "--engine ray needs Ray: pip install 'radiology-qc[distributed]'"
#: Test hooks (fault tests only): each task writes a marker named after its node label, then sleeps.
MARK_DIR_ENV, NODE_LABEL_ENV, TASK_SLEEP_ENV = (
    "RADQC_TEST_TASK_MARKS",
    "RADQC_TEST_NODE",
    "RADQC_TEST_TASK_SLEEP",
)
TASK_RETRIES = 3

_ENGINES: dict[str, Any] = {}  # spec (as JSON) -> engine, per Ray worker process


class RayUnavailableError(ValueError):
    """``--engine ray`` without Ray installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(RAY_MISSING) from exc
    return ray


def _test_task_hook() -> None:
    marks = os.environ.get(MARK_DIR_ENV)
    if marks:
        label = os.environ.get(NODE_LABEL_ENV, "node")
        Path(marks, f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
        time.sleep(float(os.environ.get(TASK_SLEEP_ENV, "0") or 0))


def _engine_for(spec: EngineSpec) -> Any:
    key = json.dumps(asdict(spec), sort_keys=True, default=str)
    if key not in _ENGINES:
        try:  # one BLAS thread per task: the tasks are the parallelism
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:
            pass
        _ENGINES.clear()
        _ENGINES[key] = spec.build()
    return _ENGINES[key]


def chunk_task(spec: EngineSpec, chunk: Chunk) -> list[CaseOutcome]:
    """Ray task body: this worker's engine (built on first use) on one chunk."""
    _test_task_hook()
    return lookup_chunk(_engine_for(spec), chunk)


class RayChunkMap:
    """Context manager: connect (or start a local Ray), then map chunks to outcomes in input order."""

    def __init__(self, spec: EngineSpec, address: str | None, max_workers: int) -> None:
        self.spec, self.address, self.max_workers = spec, address, max_workers
        self.ray: Any = None

    def __enter__(self) -> RayChunkMap:
        self.ray = import_ray()
        if not self.ray.is_initialized():
            options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
            if self.address:
                self.ray.init(address=self.address, **options)
            else:
                self.ray.init(num_cpus=self.max_workers, include_dashboard=False, **options)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ray.shutdown()

    def __call__(self, chunks: Iterable[Chunk]) -> Iterator[list[CaseOutcome]]:
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        max_in_flight = 2 * max(cpus, 1)
        task = self.ray.remote(max_retries=TASK_RETRIES)(chunk_task)
        spec = self.ray.put(self.spec)
        pending: deque = deque()
        for chunk in chunks:
            pending.append(task.remote(spec, chunk))
            if len(pending) >= max_in_flight:
                yield self.ray.get(pending.popleft())
        while pending:
            yield self.ray.get(pending.popleft())
