"""Background batch jobs: one worker thread processes queued jobs chunk by chunk.

Each chunk's results are committed together, so a stopped process loses at most the chunk in
flight; at start-up unfinished jobs are resumed (only the missing items) or marked ``interrupted``.
"""

from __future__ import annotations

import logging
import queue
import threading

from nhs_lookup.service.db import ItemOutcome, JobItem, Store
from nhs_lookup.service.lookups import Answer, EngineLike, answer_many, answer_one
from nhs_lookup.service.settings import ReviewRules

log = logging.getLogger("nhs_lookup.service.jobs")
_WAKE = ""  # queued by stop() so the worker notices at once


class JobRunner:
    """Runs batch jobs in a single background thread, next to request handlers using the same engine
    (lookups are thread-safe: the engine's only mutable state is its parse cache, a plain dict)."""

    def __init__(self, store: Store, engine: EngineLike, rules: ReviewRules, chunk_size: int = 50) -> None:
        self.store = store
        self.engine = engine
        self.rules = rules
        self.chunk_size = max(1, chunk_size)
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="nhs-lookup-jobs", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop after the chunk in flight (does not wait)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the chunk in flight; unfinished jobs stay 'running' and resume at the next start."""
        self.request_stop()
        self._queue.put(_WAKE)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if job_id == _WAKE:
                self._queue.task_done()
                continue
            try:
                self.run_job(job_id)
            except Exception as exc:  # a broken job must not kill the runner
                log.exception("job %s failed", job_id)
                self.store.set_job_status(job_id, "failed", f"job failed: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def run_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.status not in {"queued", "running"}:
            return
        self.store.set_job_status(job_id, "running")
        while not self._stop.is_set():
            items = self.store.pending_items(job_id, self.chunk_size)
            if not items:
                break
            self.store.save_job_results(job_id, self._process(items))
        if self._stop.is_set():
            return  # left 'running': recovered at the next start-up
        job = self.store.get_job(job_id)
        assert job is not None
        note = f"{job.processed} item(s) processed, {job.failed} failed"
        if job.row_errors:
            note += f", {len(job.row_errors)} input row(s) not readable"
        self.store.set_job_status(job_id, "done", note)

    def _process(self, items: list[JobItem]) -> list[ItemOutcome]:
        queries = [it.query() for it in items]
        try:
            answers = answer_many(self.engine, self.store, self.rules, queries)
            return [_outcome(it, a) for it, a in zip(items, answers, strict=True)]
        except Exception:
            log.warning("chunk failed as a whole; retrying its items one by one", exc_info=True)
        outcomes = []
        for it, q in zip(items, queries, strict=True):
            try:
                answer, _ = answer_one(self.engine, self.store, self.rules, q)
                outcomes.append(_outcome(it, answer))
            except Exception as exc:  # per-item error: reported, the rest processed
                outcomes.append(ItemOutcome(item_id=it.id, result=None, error=f"{type(exc).__name__}: {exc}"))
        return outcomes


def _outcome(item: JobItem, answer: Answer) -> ItemOutcome:
    return ItemOutcome(
        item_id=item.id,
        result=answer.payload,
        remembered=answer.remembered,
        mapping_id=answer.mapping_id,
        target=answer.target,
        confidence=answer.confidence,
        flags=list(answer.flags),
    )
