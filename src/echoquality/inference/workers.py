"""Decoding + preprocessing in worker processes, with crash isolation (torch is never imported here).

Workers are spawned (forking a process that already used OpenCV can deadlock) and return plain numpy
outcomes; a decoder panic is caught inside the worker, and a worker that dies costs at most its file.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import PreprocessConfig
from echoquality.results_schema import short_detail


@dataclass
class _Job:
    index: int
    path: str
    folder: str
    want_clip: bool = False


@dataclass
class _Outcome:
    index: int
    info: Any = None  # DicomInfo or None
    tensor: np.ndarray | None = None  # float32 (3, T, S, S)
    clip: np.ndarray | None = None  # uint8 BGR (t, S, S, 3), only for Grad-CAM
    reason: str | None = None
    detail: str | None = None
    seconds: float = 0.0


_WORKER_CFG: PreprocessConfig | None = None
_WORKER_CAP: int | None = None
#: Test hook (regression tests only): comma-separated file names on which a decode worker kills itself
#: with SIGKILL; "name:1" kills only once per marker folder ``ECHOQUALITY_TEST_KILL_STATE``.
KILL_HOOK_ENV = "ECHOQUALITY_TEST_KILL_WORKER_ON"
KILL_STATE_ENV = "ECHOQUALITY_TEST_KILL_STATE"
#: Test hook (regression tests only): comma-separated file names on which a decode worker hangs.
HANG_HOOK_ENV = "ECHOQUALITY_TEST_HANG_WORKER_ON"
WORKER_DIED = "worker process died while decoding"


def timed_out_detail(seconds: float) -> str:
    """Skip detail of a file whose decode was stopped after *seconds*."""
    return f"decoding did not finish within {seconds:g} s (decode_timeout_s); its worker was stopped"


def _init_worker(cfg: PreprocessConfig, max_decode_bytes: int | None = None) -> None:
    """Worker initialiser: remember the config; one OpenCV thread per worker (processes give parallelism)."""
    global _WORKER_CFG, _WORKER_CAP
    _WORKER_CFG, _WORKER_CAP = cfg, max_decode_bytes
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # OpenCV is optional for the initialiser
        pass


class Isolation:
    """Crash and hang isolation shared by the local and the Ray engines: the jobs in flight when a worker
    died or a decode hung are suspects, rerun one at a time; a job that fails again while running alone
    is the culprit."""

    def __init__(self) -> None:
        self.suspects: deque[_Job] = deque()
        self.alone: _Job | None = None  # the suspect now running alone

    @property
    def active(self) -> bool:
        """Suspects remain (or one is running): run nothing else."""
        return bool(self.suspects) or self.alone is not None

    def next_alone(self) -> _Job | None:
        """The next suspect to run alone (the caller has nothing else in flight), or None."""
        if self.alone is None and self.suspects:
            self.alone = self.suspects.popleft()
            return self.alone
        return None

    def unsent(self, job: _Job) -> None:
        """*job* from :meth:`next_alone` could not be submitted: it waits again, first in line."""
        self.alone = None
        self.suspects.appendleft(job)

    def finished(self, job: _Job) -> None:
        """*job* finished (whatever its outcome)."""
        if job is self.alone:
            self.alone = None

    def failed(self, job: _Job) -> bool:
        """*job*'s worker died or was stopped: True when it ran alone (the culprit, for the caller to
        report or retry), else it becomes a suspect."""
        if job is self.alone:
            self.alone = None
            return True
        self.suspects.append(job)
        return False


def test_hang_hook(path: str) -> None:
    """Hang (sleep an hour) when the test hook names *path*; callers run it in worker processes only."""
    if Path(path).name in os.environ.get(HANG_HOOK_ENV, "").split(","):
        time.sleep(3600)


def _test_kill_hook(path: str) -> None:
    """SIGKILL this worker process, or hang it, when a test hook names *path* (never in the main process)."""
    if multiprocessing.parent_process() is None:
        return
    test_hang_hook(path)
    name = Path(path).name
    spec = os.environ.get(KILL_HOOK_ENV)
    if not spec:
        return
    for item in spec.split(","):
        target, _, once = item.partition(":")
        if target != name:
            continue
        if once:
            try:
                fd = os.open(Path(os.environ[KILL_STATE_ENV]) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def preprocess_job(
    job: _Job, cfg: PreprocessConfig | None = None, max_decode_bytes: int | None = None
) -> _Outcome:
    """Read header, check eligibility, decode and preprocess one file; every failure becomes a skip.

    Decoder panics (``pyo3_runtime.PanicException``, a BaseException) are caught here too, so nothing
    unpicklable ever leaves a worker.
    """
    from echoquality.dicom import SkipError, SkipReason, is_decoder_failure, read_header
    from echoquality.preprocess import load_clip, normalize_clip

    cfg = cfg or _WORKER_CFG or PreprocessConfig()
    cap = max_decode_bytes if max_decode_bytes is not None else _WORKER_CAP
    t0 = time.perf_counter()
    out = _Outcome(job.index)
    _test_kill_hook(job.path)
    try:
        header = read_header(Path(job.path))  # read once, passed along to the decoder
        out.info = header.info(job.folder)
        _, clip = load_clip(
            Path(job.path), cfg, job.folder, info=out.info, max_decode_bytes=cap, header=header
        )
        out.tensor = normalize_clip(clip, cfg)
        if job.want_clip:
            out.clip = clip
    except SkipError as exc:
        out.reason, out.detail = SkipReason(exc.reason).value, exc.detail
    except MemoryError:
        out.reason, out.detail = "other_errors", "out of memory while preprocessing"
    except BaseException as exc:  # noqa: BLE001 - a bad file never stops the run
        if not is_decoder_failure(exc):
            raise
        out.reason = "decode_error" if not isinstance(exc, Exception) else "other_errors"
        out.detail = f"{type(exc).__name__}: {exc}"
    out.detail = short_detail(out.detail)
    out.seconds = time.perf_counter() - t0
    return out


class Prefetcher:
    """Decode/preprocess *jobs* in worker processes, at most *max_in_flight* queued or running.

    ``start()`` spawns the workers and submits the first jobs, so they can run while the caller is
    still loading the model; iterating yields exactly one outcome per job (completion order). While the
    consumer runs a forward pass the submitted jobs keep decoding.

    A worker that dies (decoder crash, kill -9, OOM kill) breaks the pool and fails every job in flight,
    so the culprit is unknown: the pool is rebuilt and those files become suspects, retried one at a
    time. A suspect that kills its worker while running alone is retried alone once more; a file that
    kills a worker twice that way is reported as ``decode_error`` (:data:`WORKER_DIED`).

    A hanging decoder is handled the same way: when no job finishes for *timeout_s* seconds, every worker
    is stopped, the jobs in flight become suspects, and a suspect that hangs while running alone is
    reported as ``decode_error`` (:func:`timed_out_detail`). Each file yields exactly one outcome.
    ``workers=0`` preprocesses inline, one job per iteration step (no timeout).
    """

    def __init__(
        self,
        jobs: Sequence[_Job],
        cfg: PreprocessConfig,
        *,
        workers: int,
        max_in_flight: int,
        start_method: str = "spawn",
        max_decode_bytes: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.cfg, self.workers, self.start_method = cfg, workers, start_method
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.max_decode_bytes = max_decode_bytes
        self.max_in_flight = max(max_in_flight, workers, 1)
        self._queue = deque(jobs)
        self._isolation = Isolation()  # jobs in flight when a worker died or hung: rerun alone
        self._solo_deaths: dict[int, int] = {}  # job index -> workers it killed while running alone
        self._pending: dict[cf.Future[_Outcome], _Job] = {}
        self._pool: cf.ProcessPoolExecutor | None = None
        self.pool_restarts = 0

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        ctx = multiprocessing.get_context(self.start_method)
        return cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.cfg, self.max_decode_bytes)
        )

    def _submit(self, job: _Job) -> bool:
        assert self._pool is not None
        try:
            self._pending[self._pool.submit(preprocess_job, job)] = job
        except (cf.process.BrokenProcessPool, RuntimeError):  # the pool broke since the last wait
            return False
        return True

    def _fill(self) -> None:
        """Top up the in-flight jobs; while suspects remain, run exactly one of them at a time."""
        if self._isolation.active:
            job = None if self._pending else self._isolation.next_alone()
            if job is not None and not self._submit(job):
                self._isolation.unsent(job)
            return
        while self._queue and len(self._pending) < self.max_in_flight:
            if not self._submit(self._queue[0]):
                break
            self._queue.popleft()

    def start(self) -> Prefetcher:
        if self.workers > 0 and self._pool is None:
            self._pool = self._new_pool()
            self._fill()
        return self

    def close(self) -> None:
        """Stop the workers. Left mid-run (an interruption), the decodes still running are stopped too
        rather than waited for: one of them may be a decoder that never returns."""
        if self._pool is not None:
            if any(not fut.done() for fut in self._pending):
                self._kill_workers()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _kill_workers(self) -> None:
        """SIGKILL the pool's worker processes (CPython's pool cannot cancel a running call); the pool
        then fails every pending future with ``BrokenProcessPool``."""
        assert self._pool is not None
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            proc.kill()

    def __enter__(self) -> Prefetcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        self.pool_restarts += 1

    def _collect(self, futures: Iterable[cf.Future[_Outcome]], died: list[_Job]) -> list[_Outcome]:
        """Outcomes of finished *futures*; jobs whose worker died are appended to *died*."""
        outcomes: list[_Outcome] = []
        for fut in futures:
            job = self._pending.pop(fut)
            try:
                outcomes.append(fut.result())
            except cf.process.BrokenProcessPool:
                died.append(job)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be pickled
                detail = f"worker failed: {type(exc).__name__}: {exc}"
                outcomes.append(_Outcome(job.index, reason="decode_error", detail=short_detail(detail)))
            self._isolation.finished(job)
        return outcomes

    def _handle_death(self, died: list[_Job]) -> list[_Outcome]:
        """A worker died: report the suspect that died alone, queue the others as suspects, new pool."""
        outcomes = self._collect(cf.wait(list(self._pending)).done, died)  # the broken pool fails them all
        for job in died:
            if self._isolation.failed(job):  # certainly the culprit: it ran alone
                self._solo_deaths[job.index] = self._solo_deaths.get(job.index, 0) + 1
                if self._solo_deaths[job.index] >= 2:
                    outcomes.append(_Outcome(job.index, reason="decode_error", detail=WORKER_DIED))
                else:
                    self._isolation.suspects.append(job)  # once more, alone
        self._restart_pool()
        return outcomes

    def _handle_hang(self) -> list[_Outcome]:
        """No job finished within the timeout: stop every worker (CPython's pool has no per-task cancel
        of a running call), report the job that hung while running alone, queue the others as suspects."""
        assert self._pool is not None and self.timeout_s is not None
        self._kill_workers()
        died: list[_Job] = []
        outcomes = self._collect(cf.wait(list(self._pending)).done, died)  # the broken pool fails them
        for job in died:
            if self._isolation.failed(job):  # certainly the culprit: it ran alone
                outcomes.append(
                    _Outcome(job.index, reason="decode_error", detail=timed_out_detail(self.timeout_s))
                )
        self._restart_pool()
        return outcomes

    def __iter__(self) -> Iterator[_Outcome]:
        if self.workers <= 0:
            while self._queue:
                yield preprocess_job(self._queue.popleft(), self.cfg, self.max_decode_bytes)
            return
        self.start()
        while self._queue or self._isolation.suspects or self._pending:
            self._fill()
            if not self._pending:  # submitting failed: the pool is broken
                self._restart_pool()
                continue
            done, _ = cf.wait(list(self._pending), timeout=self.timeout_s, return_when=cf.FIRST_COMPLETED)
            died: list[_Job] = []
            outcomes = self._collect(done, died) if done else self._handle_hang()
            if died:
                outcomes += self._handle_death(died)
            self._fill()  # keep the workers busy while the consumer handles these outcomes
            yield from outcomes


def iter_preprocessed(jobs: Sequence[_Job], cfg: PreprocessConfig, **options: Any) -> Iterator[_Outcome]:
    """One outcome per job, decoded in ``workers`` processes; *options* are :class:`Prefetcher`'s
    (``workers``, ``max_in_flight``, ``start_method``, ``max_decode_bytes``, ``timeout_s``)."""
    with Prefetcher(jobs, cfg, **options) as pf:
        yield from pf
