"""``nhs-lookup train --engine ray``: chunks as Ray tasks, results back in input order.

Each Ray worker process builds the engine once (cached per :class:`EngineSpec`) and runs
:func:`lookup_chunk` on the chunks it is given. Results are yielded in input order, so the caller
commits them through the same store, checkpoints and resume rules as the local process pool. A task
whose worker or node dies is re-run by Ray (``max_retries``); nothing is committed twice because only
the parent commits, and it commits each chunk once. Imported only for ``--engine ray``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from radqc_common import raytools

from .outcome import CaseOutcome
from .runner import Chunk, EngineSpec, lookup_chunk

TASK_RETRIES = 3

_ENGINES: dict[str, Any] = {}  # spec (as JSON) -> engine, per Ray worker process


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
    raytools.test_task_hook()
    return lookup_chunk(_engine_for(spec), chunk)


class RayChunkMap:
    """Context manager: connect (or start a local Ray), then map chunks to outcomes in input order."""

    def __init__(self, spec: EngineSpec, address: str | None, max_workers: int) -> None:
        self.spec, self.address, self.max_workers = spec, address, max_workers
        self.ray: Any = None

    def __enter__(self) -> RayChunkMap:
        self.ray = raytools.connect(self.address, self.max_workers)
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
