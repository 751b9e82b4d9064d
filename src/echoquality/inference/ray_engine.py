"""``echoquality infer --engine ray``: decode + preprocess as Ray tasks feeding a pool of model actors.

Why plain Ray tasks and actors rather than a Ray Data pipeline: every file must yield exactly one outcome
(a skip reason or a score) keyed by its job index, in-flight work must stay bounded, and a lost node must
cost only a retry. Tasks give that directly (``max_retries`` re-runs a task whose worker or node died,
lineage rebuilds a decoded tensor lost with its node), with no extra operator actors or executor
threads competing for the cores of a small machine. Decoded tensors stay in the object store and go
straight to a model actor (``num_gpus=1`` each when the cluster has GPUs, otherwise one CPU actor that,
like the local engine's main process, reserves no CPU so decoding keeps every core).

The run itself is :class:`~echoquality.inference.runner.InferenceRun` with the worker and scoring steps
replaced, so outputs, resume rules, skip reasons and the progress display are the local engine's.
This module is imported only for ``--engine ray``; nothing else imports Ray.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from echoquality.config import PreprocessConfig
from echoquality.results_schema import short_detail
from echoquality.scoring import assessment_for, status_for
from radqc_common import raytools

from .errors import InferenceError
from .runner import FLUSH_EVERY_S, InferenceRun, _apply_info, _file_result, decode_cap
from .workers import (
    WORKER_DIED,
    Isolation,
    _init_worker,
    _Job,
    _Outcome,
    preprocess_job,
    test_hang_hook,
    timed_out_detail,
)

TASK_RETRIES = 3
ACTOR_RESTARTS = 4


def import_ray() -> Any:
    """The ``ray`` module, or :class:`InferenceError` with the extra to install."""
    try:
        return raytools.import_ray()
    except raytools.RayUnavailableError as exc:
        raise InferenceError(str(exc)) from exc


def connect(address: str | None, num_cpus: int) -> Any:
    """Join the cluster at *address*, or start a local one (see :func:`radqc_common.raytools.connect`)."""
    import_ray()
    return raytools.connect(address, num_cpus)


def decode_task(job: _Job, cfg: PreprocessConfig, cap: int | None) -> tuple[_Outcome, Any]:
    """Ray task body: one file's outcome without its tensor, and the tensor (None for a skip)."""
    raytools.test_task_hook()
    test_hang_hook(job.path)
    _init_worker(cfg, cap)  # as in the local pool: one OpenCV thread per decode worker, not one per core
    out = preprocess_job(job, cfg, cap)
    tensor, out.tensor, out.clip = out.tensor, None, None
    return out, tensor


class ScoreActor:
    """A model replica: built once from the weights, scores batches of decoded tensors."""

    def __init__(self, state_dict: dict[str, Any], device: str) -> None:
        import torch

        from echoquality.model import model_from_state_dict

        if device == "cpu":  # like the local engine's main process: torch uses every core
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        self.model = model_from_state_dict(state_dict, torch.device(device))

    def ready(self) -> bool:
        return True

    def score(self, *tensors: Any) -> list[float]:
        import numpy as np
        import torch

        from echoquality.model import score_batch

        return [float(s) for s in score_batch(self.model, torch.from_numpy(np.stack(tensors)))]


class RayPipeline:
    """Decode tasks -> batches of object refs -> model actors; yields ``(outcome, score or None)``.

    At most *max_in_flight* files are decoding, waiting in a batch or being scored. A decode task whose
    worker or node died is retried by Ray (``TASK_RETRIES``); one that still fails is reported as
    ``decode_error``. A hanging decode is handled as in the local engine: when nothing finishes for
    *timeout_s* seconds and no forward pass is pending, the decode tasks in flight are force-cancelled
    (their workers stopped) and retried one at a time; one that hangs while running alone is reported as
    ``decode_error``. Every job yields exactly one pair.
    """

    def __init__(
        self,
        ray: Any,
        jobs: Sequence[_Job],
        cfg: PreprocessConfig,
        *,
        cap: int | None,
        max_in_flight: int,
        timeout_s: float | None = None,
    ) -> None:
        self.ray = ray
        self._queue = deque(jobs)
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self._isolation = Isolation()  # decodes in flight when one hung: rerun alone
        self.max_in_flight = max(1, max_in_flight)
        self._decode = ray.remote(num_returns=2, max_retries=TASK_RETRIES)(decode_task)
        self._args = (ray.put(cfg), cap)
        self._decoding: dict[Any, tuple[_Job, Any]] = {}
        self._batch: list[tuple[_Outcome, Any]] = []
        self._scoring: dict[Any, list[_Outcome]] = {}
        self._in_scoring = 0
        self.actors: list[Any] = []
        self._weights: Any = None
        self._next_actor = 0
        self.batch_size = 1

    def add_actors(self, state_dict: dict[str, Any], device: str, n: int, batch_size: int) -> None:
        num_gpus = 1 if device.startswith("cuda") else 0
        cls = self.ray.remote(ScoreActor).options(
            num_cpus=0, num_gpus=num_gpus, max_restarts=ACTOR_RESTARTS, max_task_retries=-1
        )
        # kept for the run: an actor restarted after its node died is rebuilt from this object
        self._weights = self.ray.put(state_dict)
        self.actors = [cls.remote(self._weights, device) for _ in range(max(1, n))]
        self.batch_size = max(1, batch_size)
        # like the local engine, the loop starts once the model is built (decoding already runs)
        self.ray.get([a.ready.remote() for a in self.actors])

    def _in_flight(self) -> int:
        return len(self._decoding) + len(self._batch) + self._in_scoring

    def _submit(self, job: _Job) -> None:
        meta, tensor = self._decode.remote(job, *self._args)
        self._decoding[meta] = (job, tensor)

    def fill(self) -> None:
        """Top up the decode tasks; while suspects of a hang remain, decode exactly one at a time."""
        if self._isolation.active:
            job = None if self._decoding else self._isolation.next_alone()
            if job is not None:
                self._submit(job)
            return
        while self._queue and self._in_flight() < self.max_in_flight:
            self._submit(self._queue.popleft())

    def _handle_hang(self) -> Iterator[tuple[_Outcome, None]]:
        """Nothing finished within the timeout: cancel every decode task in flight; the one that hung alone
        is reported, the others become suspects."""
        assert self.timeout_s is not None
        for ref, (job, _) in list(self._decoding.items()):
            self.ray.cancel(ref, force=True)
            del self._decoding[ref]
            if self._isolation.failed(job):
                yield (
                    _Outcome(job.index, reason="decode_error", detail=timed_out_detail(self.timeout_s)),
                    None,
                )

    def _dispatch(self) -> None:
        batch, self._batch = self._batch[: self.batch_size], self._batch[self.batch_size :]
        actor = self.actors[self._next_actor % len(self.actors)]
        self._next_actor += 1
        self._scoring[actor.score.remote(*[ref for _, ref in batch])] = [o for o, _ in batch]
        self._in_scoring += len(batch)

    def _decoded(self, ref: Any) -> _Outcome | None:
        """The outcome of a finished decode task; None when its tensor joined the batch."""
        job, tensor = self._decoding.pop(ref)
        self._isolation.finished(job)
        try:
            out: _Outcome = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # an exception inside the task
            detail = f"worker failed: {type(exc.cause).__name__}: {exc.cause}"
            return _Outcome(job.index, reason="decode_error", detail=short_detail(detail))
        except self.ray.exceptions.RayError:  # its worker/node died more often than retried
            return _Outcome(job.index, reason="decode_error", detail=WORKER_DIED)
        if out.reason is not None:
            return out
        self._batch.append((out, tensor))
        return None

    def __iter__(self) -> Iterator[tuple[_Outcome, float | None]]:
        self.fill()
        while self._queue or self._isolation.suspects or self._decoding or self._batch or self._scoring:
            # a part batch waits while decoding can still grow it or a scoring call will free room for that
            while len(self._batch) >= self.batch_size or (
                self._batch and not self._decoding and not (self._queue and self._scoring)
            ):
                self._dispatch()
            ready, _ = self.ray.wait([*self._decoding, *self._scoring], num_returns=1, timeout=self.timeout_s)
            if not ready and not self._scoring:  # a slow forward pass is not a hung decode
                yield from self._handle_hang()
            for ref in ready:
                if ref in self._decoding:
                    out = self._decoded(ref)
                    if out is not None:
                        yield out, None
                    continue
                outs = self._scoring.pop(ref)
                self._in_scoring -= len(outs)
                yield from zip(outs, self.ray.get(ref), strict=True)
            self.fill()

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


class RayInferenceRun(InferenceRun):
    """:class:`InferenceRun` with decoding as Ray tasks and forward passes in Ray model actors."""

    def __init__(self, *args: Any, address: str | None = None, actors: int | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.address, self.n_actors = address, actors

    def _check_usage(self) -> None:
        super()._check_usage()
        if self.gradcam_fn is not None:
            raise InferenceError("--gradcam is not available with --engine ray; run it with --engine local")
        self.ray = import_ray()

    def _start_workers(self) -> RayPipeline:
        self.batch_size = max(1, int(self.icfg.batch_size))
        self.workers = max(1, int(self.icfg.num_workers))
        ray = connect(self.address, self.workers)
        resources = ray.cluster_resources()
        self.workers = int(resources.get("CPU", self.workers))
        gpus = int(resources.get("GPU", 0))
        if str(self.device) != "cpu" or (gpus and self.icfg.device == "auto"):
            self.actor_device = "cuda" if gpus else str(self.device)
        else:
            self.actor_device = "cpu"
        self.n_actors = self.n_actors or max(1, gpus if self.actor_device == "cuda" else 1)
        in_flight = self.icfg.max_in_flight or (2 * self.batch_size * self.n_actors + 2 * self.workers)
        self.pipeline = RayPipeline(
            ray,
            self.jobs,
            self.cfg.preprocess,
            cap=decode_cap(self.cfg),
            max_in_flight=in_flight,
            timeout_s=self.icfg.decode_timeout_s,
        )
        return self.pipeline

    def _build_model(self, state_dict: dict[str, Any]) -> None:
        if self.jobs:
            # like the local engine, decoding starts before the model is built, so the decode workers'
            # start-up (imports) overlaps with building the model actors
            self.pipeline.fill()
            self.pipeline.add_actors(state_dict, self.actor_device, self.n_actors or 1, self.batch_size)
        self.device = self.actor_device
        return None

    def _take(self, outcome: _Outcome, score: float | None) -> None:
        f = self.job_files[outcome.index]
        r = _file_result(f, self._path_text(f))
        _apply_info(r, outcome.info)
        if score is None:
            r.skip_reason, r.skip_detail = outcome.reason or "other_errors", outcome.detail
            self.counts["skipped"] += 1
        else:
            r.score = float(score)
            r.status, r.assessment = status_for(r.score, self.threshold), assessment_for(r.score)
            self.counts["scored"] += 1
        self._record(r)
        self.bar.advance(self.task)

    def _score_all(self, pipeline: RayPipeline) -> float:  # type: ignore[override]
        """Consume every (outcome, score) from the cluster; returns the loop's wall time."""
        self.bar = self._progress_bar()
        if self.jobs:
            self.console.print(
                f"Scoring {len(self.jobs)} file(s) ({self.reused} reused from earlier runs) on a Ray cluster: "
                f"{self.n_actors} model actor(s) on {self.actor_device}, {self.workers} decode CPU(s), "
                f"batch {self.batch_size}"
            )
        t_loop = time.perf_counter()
        try:
            with self.bar:
                self.task = self.bar.add_task("scoring", total=len(self.jobs), info="")
                for outcome, score in pipeline:
                    self._take(outcome, score)
                    self._progress_info()
                    if time.perf_counter() - self.last_flush > FLUSH_EVERY_S:
                        self._flush()
                pipeline.close()
            # the loop ends with its last outcome and its actors gone; stopping the local cluster below is
            # teardown (like starting it), counted in the command's wall time but not in the loop's
            loop_s = time.perf_counter() - t_loop
        finally:
            pipeline.close()
            if not self.address:  # the local instance this run started
                self.ray.shutdown()
            self._flush()  # whatever finished survives an interruption
        return loop_s
