"""Micro-batching of concurrent single lookups.

One engine call has a fixed cost (vectorising the query, sparse products) much larger than the cost of
one more query in the same call. :class:`BatchingEngine` queues the ``/lookup`` requests that arrive
together and answers them with one ``lookup_many`` call per batch: alone, a request is answered at
once (a batch of one); under load, each batch takes everything that queued up while the previous one
ran, so throughput grows with concurrency instead of collapsing. Lookups with ``exclude`` (rejected
targets) and everything else go straight to the wrapped engine.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future
from typing import Any

from nhs_lookup.records import CatalogueEntry, ExamQuery, LookupResult

log = logging.getLogger("nhs_lookup.service.batching")
MAX_BATCH = 64
_STOP = None


class BatchingEngine:
    """The engine's interface; concurrent plain ``lookup`` calls are served in batches by *threads*
    background threads (one per core the wrapped engine can use)."""

    def __init__(self, engine: Any, threads: int = 1, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.config = engine.config
        self.catalogue = engine.catalogue
        self.max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[tuple[ExamQuery, Future] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"nhs-lookup-batch-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for t in self._threads:
            t.start()

    def lookup(
        self, query: ExamQuery | str, *, modality_code: str | None = None, exclude: Collection[str] = ()
    ) -> LookupResult:
        if isinstance(query, str):
            query = ExamQuery(exam_name=query, modality_code=modality_code)
        if exclude:
            return self.engine.lookup(query, exclude=exclude)
        future: Future[LookupResult] = Future()
        self._queue.put((query, future))
        return future.result()

    def lookup_many(self, queries: Iterable[ExamQuery]) -> list[LookupResult]:
        return self.engine.lookup_many(queries)

    def search_catalogue(self, text: str, limit: int = 20) -> list[CatalogueEntry]:
        return self.engine.search_catalogue(text, limit)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout=10)

    # ------------------------------------------------------------------------------ batch thread
    def _take(self) -> list[tuple[ExamQuery, Future]] | None:
        """The next batch: wait for one request, then take whatever else is already queued."""
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # leave it for the next round: finish this batch first
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self._answer(batch)

    def _answer(self, batch: list[tuple[ExamQuery, Future]]) -> None:
        try:
            results = self.engine.lookup_many([q for q, _ in batch])
        except Exception:  # one bad query must not fail its neighbours: retry each alone
            log.warning("batched lookup of %d failed; answering one by one", len(batch), exc_info=True)
            results = None
        for i, (query, future) in enumerate(batch):
            if results is not None:
                future.set_result(results[i])
                continue
            try:
                future.set_result(self.engine.lookup(query))
            except Exception as exc:  # delivered to the waiting request (a 500 there, logged)
                future.set_exception(exc)
