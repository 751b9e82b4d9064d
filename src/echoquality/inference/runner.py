"""One ``echoquality infer`` run as an object: weights -> cache -> decode/score loop -> result files.

:class:`InferenceRun` holds the run's state (weights, cached and new results, the batch being built)
and does one step per method; :func:`run_inference` is the public entry point. Torch is imported only
when a run starts, so that importing this package stays light for the spawned decode workers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig
from echoquality.outputs import (
    FileResult,
    FolderResult,
    InferenceSummary,
    atomic_write_json,
    write_plots,
    write_run_outputs,
)
from echoquality.scoring import assessment_for, status_for, validate_threshold

from .discover import InputFile, discover
from .errors import InferenceError
from .resume import (
    STATE_FILE,
    check_previous_run,
    clean_output,
    file_stat,
    load_state,
    preprocess_signature,
    save_state,
)
from .workers import Prefetcher, _Job, _Outcome

FLUSH_EVERY_S = 10.0
_VERSIONED = ("torch", "torchvision", "pydicom", "opencv-python-headless", "matplotlib", "pylibjpeg")


def decode_cap(cfg: EchoConfig) -> int:
    """Decode memory cap in bytes: ``inference.max_decode_mb``, or derived from the model's input."""
    from echoquality.dicom import default_decode_cap

    mb = float(cfg.inference.max_decode_mb or 0)
    if mb > 0:
        return int(mb * 2**20)
    return default_decode_cap(cfg.preprocess.num_frames, cfg.preprocess.frame_stride)


def _gradcam_function() -> Callable[..., Any]:
    try:
        from echoquality.evaluation.gradcam import save_gradcam
    except ImportError as exc:
        raise InferenceError(
            "--gradcam is not available: the module echoquality.evaluation.gradcam is missing or broken "
            f"({exc}); run without --gradcam"
        ) from exc
    return save_gradcam


def _file_result(f: InputFile, path_text: str) -> FileResult:
    from echoquality.dicom import machine_type_from_folder

    size, mtime = file_stat(f.path)
    return FileResult(
        folder=f.folder,
        key=f.key,
        file_id=f.path.name,
        path=path_text,
        machine_type=machine_type_from_folder(f.folder),  # refined from the header once read
        size=size,
        mtime_ns=mtime,
    )


def _apply_info(r: FileResult, info: Any) -> None:
    if info is None:
        return
    r.machine_type = info.machine_type or r.machine_type
    r.manufacturer, r.model, r.patient_id = info.manufacturer, info.model, info.patient_id
    r.study_uid, r.sop_uid = info.study_uid, info.sop_uid
    r.num_frames, r.fps = info.num_frames, info.fps
    r.photometric, r.transfer_syntax = info.photometric, info.transfer_syntax


def _safe_name(key: str) -> str:
    return key.replace("/", "__")


class InferenceRun:
    """State and steps of one inference run; call :meth:`run` once."""

    def __init__(
        self,
        cfg: EchoConfig,
        weights: Path,
        *,
        force: bool = False,
        clean: bool = False,
        progress: bool = True,
        console: Any = None,
    ) -> None:
        from rich.console import Console

        self.cfg, self.icfg = cfg, cfg.inference
        self.weights = Path(weights)
        self.force, self.clean, self.progress = force, clean, progress
        self.console = console or Console()
        self.started = datetime.now(UTC)
        self.t_start = time.perf_counter()
        self.data_dir, self.out = Path(self.icfg.data_dir), Path(self.icfg.output_dir)
        self.results: dict[str, dict[str, FileResult]] = {}
        self.jobs: list[_Job] = []
        self.job_files: list[InputFile] = []
        self.reused = 0
        self.dirty: set[str] = set()
        self.last_flush = time.perf_counter()
        self.batch: list[tuple[FileResult, np.ndarray, np.ndarray | None]] = []
        self.counts = {"scored": 0, "skipped": 0}
        self.gradcam_fn: Callable[..., Any] | None = None

    # ------------------------------------------------------------------ steps

    def run(self) -> InferenceSummary:
        """Score every file under ``inference.data_dir`` and write all outputs."""
        self._check_usage()
        state_dict = self._load_weights()
        self._prepare_output()
        self.folders = discover(self.data_dir, exclude=[self.out])
        if not self.folders:
            raise InferenceError(
                f"no sub-folders in {self.data_dir}: put each study/device in its own sub-folder "
                f"(e.g. {self.data_dir}/epiq7-PATIENT01/<files>)"
            )
        self._collect_work()
        prefetcher = self._start_workers()
        try:
            self.model = self._build_model(state_dict)
        except BaseException:
            prefetcher.close()
            raise
        del state_dict
        self.scoring_s = self._score_all(prefetcher)
        summary = self._write_outputs()
        self._write_run_info(summary)
        return summary

    def _check_usage(self) -> None:
        """Threshold, device, data folder and Grad-CAM module: usage errors before any work."""
        from echoquality.model import resolve_device

        try:
            self.threshold = validate_threshold(self.icfg.threshold)
            self.device = resolve_device(self.icfg.device)
        except ValueError as exc:
            raise InferenceError(str(exc)) from exc
        if not self.data_dir.is_dir():
            raise InferenceError(
                f"data folder not found: {self.data_dir} (expected one sub-folder per study/device, e.g. "
                f"{self.data_dir}/epiq7-PATIENT01/...; `echoquality synth --output {self.data_dir}` "
                "makes a synthetic one)"
            )
        self.gradcam_fn = _gradcam_function() if self.icfg.gradcam else None

    def _load_weights(self) -> dict[str, Any]:
        """Weights first: nothing is touched on disk unless they load."""
        from echoquality.model import architecture_of, load_state_dict_checked
        from echoquality.model.weights import sha256_of, weights_note

        state_dict = load_state_dict_checked(self.weights)
        self.weights_sha = sha256_of(self.weights)
        self.arch = architecture_of(state_dict)
        self.note = weights_note(self.weights, self.weights_sha, self.arch)
        self.pre_hash = preprocess_signature(self.cfg.preprocess)
        return state_dict

    def _prepare_output(self) -> None:
        if self.clean:
            clean_output(self.out, self.data_dir)
        if not self.force:
            check_previous_run(self.out, self.weights_sha, self.pre_hash)
        self.out.mkdir(parents=True, exist_ok=True)

    def _path_text(self, f: InputFile) -> str:
        return str(self.data_dir / f.folder / f.key)

    def _collect_work(self) -> None:
        """Reuse cached results of unchanged files, record entries that are not files, queue the rest."""
        self.results = {name: {} for name in self.folders}
        for name, files in self.folders.items():
            cache = (
                {}
                if self.force
                else load_state(self.out / name / STATE_FILE, self.weights_sha, self.pre_hash)
            )
            for f in files:
                if f.skip is not None:  # not a file (directory named *.dcm, FIFO, dangling link, ...)
                    r = _file_result(f, self._path_text(f))
                    r.skip_reason, r.skip_detail = f.skip
                    self.results[name][f.key] = r
                    continue
                size, mtime = file_stat(f.path)
                hit = cache.get(f.key)
                if hit is not None and hit.size == size and hit.mtime_ns == mtime:
                    if hit.score is not None:
                        hit.status = status_for(hit.score, self.threshold)
                        hit.assessment = assessment_for(hit.score)
                    self.results[name][f.key] = hit
                    self.reused += 1
                else:
                    want_clip = self.gradcam_fn is not None
                    self.jobs.append(_Job(len(self.jobs), str(f.path), name, want_clip=want_clip))
                    self.job_files.append(f)

    def _start_workers(self) -> Prefetcher:
        """Start decoding now: the workers' start-up overlaps with building the model."""
        self.batch_size = max(1, int(self.icfg.batch_size))
        self.workers = max(0, int(self.icfg.num_workers))
        max_in_flight = self.icfg.max_in_flight or (2 * self.batch_size + 2 * self.workers)
        prefetcher = Prefetcher(
            self.jobs,
            self.cfg.preprocess,
            workers=self.workers,
            max_in_flight=max_in_flight,
            start_method=self.icfg.start_method,
            max_decode_bytes=decode_cap(self.cfg),
            timeout_s=self.icfg.decode_timeout_s,
        )
        if self.jobs:
            prefetcher.start()
        return prefetcher

    def _build_model(self, state_dict: dict[str, Any]) -> Any:
        from echoquality.model import model_from_state_dict

        return model_from_state_dict(state_dict, self.device)

    # ------------------------------------------------------------------ the decode + score loop

    def _flush(self, force_all: bool = False) -> None:
        """Save the cache of the folders changed since the last flush (all folders with *force_all*)."""
        for name in sorted(set(self.results) if force_all else self.dirty):
            save_state(self.out / name / STATE_FILE, self.results[name], self.weights_sha, self.pre_hash)
        self.dirty.clear()
        self.last_flush = time.perf_counter()

    def _record(self, r: FileResult) -> None:
        self.results[r.folder][r.key] = r
        self.dirty.add(r.folder)

    def _run_batch(self) -> None:
        """One forward pass over the batch; statuses, cache entries and Grad-CAMs of its files."""
        import torch

        from echoquality.model import score_batch

        tensors = torch.from_numpy(np.stack([b[1] for b in self.batch]))
        scores = score_batch(self.model, tensors)
        for (r, tensor, clip), score in zip(self.batch, scores, strict=True):
            r.score = float(score)
            r.status, r.assessment = status_for(r.score, self.threshold), assessment_for(r.score)
            self._record(r)
            if self.gradcam_fn is not None and clip is not None:
                self._gradcam(r, tensor, clip)
        self.counts["scored"] += len(self.batch)
        self.bar.advance(self.task, len(self.batch))
        self.batch.clear()

    def _gradcam(self, r: FileResult, tensor: np.ndarray, clip: np.ndarray) -> None:
        import torch

        target = self.out / r.folder / "gradcam" / f"{_safe_name(r.key)}_gradcam.gif"
        try:
            self.gradcam_fn(self.model, torch.from_numpy(tensor), clip, target)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a Grad-CAM failure must not stop scoring
            self.console.print(f"[yellow]Grad-CAM failed for {r.path}: {exc}[/]")

    def _consume(self, outcome: _Outcome) -> None:
        f = self.job_files[outcome.index]
        r = _file_result(f, self._path_text(f))
        _apply_info(r, outcome.info)
        if outcome.tensor is None:
            r.skip_reason, r.skip_detail = outcome.reason or "other_errors", outcome.detail
            self._record(r)
            self.counts["skipped"] += 1
            self.bar.advance(self.task)
            return
        self.batch.append((r, outcome.tensor, outcome.clip))
        if len(self.batch) >= self.batch_size:
            self._run_batch()

    def _progress_bar(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("[bold]scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.progress,
        )

    def _progress_info(self) -> None:
        self.bar.update(self.task, info=f"scored {self.counts['scored']}, skipped {self.counts['skipped']}")

    def _score_all(self, prefetcher: Prefetcher) -> float:
        """Consume every outcome (forward passes in batches); returns the loop's wall time."""
        self.bar = self._progress_bar()
        if self.jobs:
            self.console.print(
                f"Scoring {len(self.jobs)} file(s) ({self.reused} reused from earlier runs) on {self.device} "
                f"with {self.workers} worker(s), batch {self.batch_size}"
            )
        t_loop = time.perf_counter()
        try:
            with self.bar:
                self.task = self.bar.add_task("scoring", total=len(self.jobs), info="")
                for outcome in prefetcher:
                    self._consume(outcome)
                    self._progress_info()
                    if time.perf_counter() - self.last_flush > FLUSH_EVERY_S:
                        self._flush()
                prefetcher.close()
                if self.batch:
                    self._run_batch()
                self._progress_info()
        finally:
            prefetcher.close()
            self._flush()  # whatever finished survives an interruption
        return time.perf_counter() - t_loop

    # ------------------------------------------------------------------ outputs

    def _write_outputs(self) -> InferenceSummary:
        from echoquality.model.weights import is_reference

        folder_results = []
        for name, files in self.folders.items():
            fr = FolderResult(name, [self.results[name][f.key] for f in files if f.key in self.results[name]])
            if not files:
                fr.error = "No DICOM files found (empty folder)"
            folder_results.append(fr)
        self._flush(force_all=True)
        summary = InferenceSummary(
            output_dir=self.out,
            folders=folder_results,
            threshold=self.threshold,
            weights_path=self.weights,
            weights_sha256=self.weights_sha,
            weights_is_reference=is_reference(self.weights_sha),
            weights_note=self.note,
            device=str(self.device),
            newly_scored=len(self.jobs),
            reused=self.reused,
            scoring_s=self.scoring_s,
            scored_this_run=self.counts["scored"],
        )
        write_run_outputs(summary, write_csv=self.icfg.write_csv)
        if self.icfg.write_plots:
            write_plots(summary)
        summary.elapsed_s = time.perf_counter() - self.t_start
        return summary

    def _write_run_info(self, summary: InferenceSummary) -> None:
        """``run_info.json`` (this run's manifest) and one line of ``run_history.jsonl``."""
        import torch

        from echoquality.provenance import package_versions

        info = {
            "tool": "echoquality infer",
            "started": self.started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "elapsed_s": round(summary.elapsed_s, 3),
            "data_dir": str(self.data_dir),
            "data_dir_absolute": str(self.data_dir.resolve()),
            "output_dir": str(self.out),
            "weights_path": str(self.weights),
            "weights_sha256": self.weights_sha,
            "weights_is_reference": summary.weights_is_reference,
            "weights_note": self.note,
            "architecture": self.arch,
            "device": str(self.device),
            "threshold": self.threshold,
            "preprocess_hash": self.pre_hash,
            "files_total": summary.total_files,
            "files_processed_this_run": len(self.jobs),
            "files_scored_this_run": self.counts["scored"],
            "files_reused": self.reused,
            "scoring_s": round(self.scoring_s, 3),
            "force": self.force,
            "clean": self.clean,
            "versions": package_versions(*_VERSIONED),
            "torch_version": torch.__version__,
            "config": self.cfg.to_dict(),
        }
        atomic_write_json(self.out / "run_info.json", info)
        with (self.out / "run_history.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: info[k] for k in info if k != "config"}, default=str) + "\n")


def run_inference(
    cfg: EchoConfig,
    *,
    weights: Path,
    force: bool = False,
    clean: bool = False,
    progress: bool = True,
    console: Any = None,
    engine: str = "local",
    address: str | None = None,
    actors: int | None = None,
) -> InferenceSummary:
    """Score every file under ``cfg.inference.data_dir`` and write all outputs (see the package docs).

    *engine* ``"ray"`` decodes as Ray tasks and scores in Ray model actors (``ray_engine``; *address*:
    a cluster, or None for a local one; *actors*: model replicas); the outputs are the same.
    Raises :class:`InferenceError` for usage problems and ``echoquality.model.WeightsError`` for weights
    that are missing or do not fit; per-file problems never raise (they are recorded as skips).
    """
    options: dict[str, Any] = {"force": force, "clean": clean, "progress": progress, "console": console}
    if engine == "ray":
        from .ray_engine import RayInferenceRun  # Ray is imported only on this path

        return RayInferenceRun(cfg, weights, address=address, actors=actors, **options).run()
    if engine != "local":
        raise InferenceError(f"unknown engine {engine!r}: use local or ray")
    return InferenceRun(cfg, weights, **options).run()
