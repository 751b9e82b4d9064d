"""Micro-batching of concurrent single requests.

One engine call (and one database query) has a fixed cost much larger than the cost of one more exam
in the same call. :class:`Batcher` queues the ``/lookup`` requests that arrive together and answers
them with one batch call (``answer_batch``: one query for their remembered decisions, one
``lookup_many``): alone, a request is answered at once (a batch of one); under load, each batch takes
everything that queued up while the previous one ran, so throughput grows with concurrency instead of
collapsing. If a batch call fails, its items are answered one by one, so one bad exam fails alone.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger("nhs_lookup.service.batching")
MAX_BATCH = 64
T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Answers ``submit(item)`` with ``many(batch)`` in *threads* background threads (one per core the
    work can use); ``one(item)`` answers the items of a batch whose ``many`` call failed."""

    def __init__(
        self,
        many: Callable[[list[T]], list[R]],
        one: Callable[[T], R],
        *,
        threads: int = 1,
        max_batch: int = MAX_BATCH,
        name: str = "nhs-lookup-batch",
    ) -> None:
        self.many, self.one = many, one
        self.max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for t in self._threads:
            t.start()

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def __call__(self, item: T) -> R:
        return self.submit(item).result()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=10)

    def _take(self) -> list[tuple[T, Future[R]]] | None:
        """The next batch: wait for one request, then take whatever else is already queued."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # leave the stop signal for the next round: finish this batch
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self._answer(batch)

    def _answer(self, batch: list[tuple[T, Future[R]]]) -> None:
        results: list[R] | None = None
        if len(batch) > 1:
            try:
                results = self.many([item for item, _ in batch])
            except Exception:  # one bad item must not fail its neighbours: retry each alone
                log.warning("batch of %d failed; answering one by one", len(batch), exc_info=True)
        for i, (item, future) in enumerate(batch):
            if results is not None:
                future.set_result(results[i])
                continue
            try:
                future.set_result(self.one(item))
            except Exception as exc:  # delivered to the waiting request (a logged 500 there)
                future.set_exception(exc)
