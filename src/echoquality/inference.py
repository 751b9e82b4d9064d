"""Batch inference over a folder of study/device sub-folders (``echoquality infer``).

Pipeline: decoding + preprocessing run in worker processes (``ProcessPoolExecutor``) while the main
process runs batched forward passes, so the model rarely waits on I/O. At most ``max_in_flight`` files
are queued or decoded at a time, which bounds memory. ``num_workers=0`` runs everything inline.

Results are cached per folder (``<out>/<folder>/inference_state.json``) with the weights' SHA-256 and a
hash of the preprocessing config: a re-run scores only new or changed files; ``force`` re-scores,
``clean`` starts from an empty output folder. This module keeps torch out of its import so that the
spawned worker processes start fast and light.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import stat
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig, PreprocessConfig
from echoquality.outputs import (
    FileResult,
    FolderResult,
    InferenceSummary,
    atomic_write_json,
    write_plots,
    write_run_outputs,
)
from echoquality.scoring import assessment_for, status_for, validate_threshold

STATE_FILE = "inference_state.json"
STATE_FORMAT = 1
FLUSH_EVERY_S = 10.0

__all__ = ["InferenceError", "InferenceSummary", "run_inference", "discover", "preprocess_signature"]


class InferenceError(Exception):
    """A usage problem that stops the whole run (bad data dir, conflicting earlier results, ...)."""


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class InputFile:
    folder: str
    key: str  # POSIX path relative to the folder
    path: Path
    skip: tuple[str, str] | None = None  # (reason, detail) for entries that cannot be read as files


#: Directory names that look like DICOM files; such a directory is reported (and still searched).
_FILE_LIKE_SUFFIXES = (".dcm", ".dicom", ".dic")
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special_kind(mode: int) -> str:
    return next((text for test, text in _SPECIAL_KINDS if test(mode)), "not a regular file")


def _link_entry(folder: str, key: str, path: Path) -> InputFile:
    """A symbolic link: its target file, or a skip (dangling, loop, directory, special file)."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputFile(folder, key, path, ("unreadable", "symbolic link loop"))
        if exc.errno == errno.ENOENT:
            target = os.readlink(path)
            return InputFile(folder, key, path, ("unreadable", f"dangling symbolic link to {target}"))
        return InputFile(folder, key, path, ("unreadable", f"cannot follow symbolic link: {exc}"))
    if stat.S_ISREG(st.st_mode):
        return InputFile(folder, key, path)
    if stat.S_ISDIR(st.st_mode):
        return InputFile(folder, key, path, ("not_a_file", "symbolic link to a directory (not followed)"))
    return InputFile(folder, key, path, ("not_a_file", f"symbolic link to {_special_kind(st.st_mode)}"))


def _walk(folder: str, root: Path, rel: str, excluded: set[Path]) -> Iterator[InputFile]:
    """Every entry below ``root/rel``: files (followed links included) and, with a skip reason,
    everything else that is not a plain directory. Never opens an entry, so a FIFO cannot block."""
    here = root / rel if rel else root
    try:
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if rel:
            yield InputFile(folder, rel, here, ("unreadable", f"cannot list directory: {exc.strerror}"))
        return
    for entry in entries:
        key = f"{rel}/{entry.name}" if rel else entry.name
        path = here / entry.name
        try:
            if entry.is_symlink():
                found = _link_entry(folder, key, path)
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() in excluded:
                    continue
                if entry.name.lower().endswith(_FILE_LIKE_SUFFIXES):
                    yield InputFile(folder, key, path, ("not_a_file", "a directory named like a DICOM file"))
                yield from _walk(folder, root, key, excluded)
                continue
            elif entry.is_file(follow_symlinks=False):
                found = InputFile(folder, key, path)
            else:
                kind = _special_kind(entry.stat(follow_symlinks=False).st_mode)
                found = InputFile(folder, key, path, ("not_a_file", f"{kind}: not read"))
        except OSError as exc:
            found = InputFile(folder, key, path, ("unreadable", f"cannot inspect: {exc.strerror or exc}"))
        if found.skip is None and any(path.resolve().is_relative_to(e) for e in excluded):
            continue
        yield found


def discover(data_dir: Path, exclude: Sequence[Path] = ()) -> dict[str, list[InputFile]]:
    """Immediate sub-folders of *data_dir* (sorted) -> every entry below them (recursive, sorted by key).

    Files are kept whatever their extension (DICOM is detected by content). Plain directories are
    searched, not listed; directories named like DICOM files (``*.dcm``), dangling or looping symbolic
    links, links to directories and FIFOs/sockets/devices are listed with a skip reason (``not_a_file``
    or ``unreadable``) so that nothing disappears silently. Hidden sub-folders and the folders in
    *exclude* (e.g. an output folder inside the data folder) are ignored.
    """
    excluded = {p.resolve() for p in exclude}
    out: dict[str, list[InputFile]] = {}
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.resolve() in excluded:
            continue
        out[sub.name] = sorted(_walk(sub.name, sub, "", excluded), key=lambda f: f.key)
    return out


def decode_cap(cfg: EchoConfig) -> int:
    """Decode memory cap in bytes: ``inference.max_decode_mb``, or derived from the model's input."""
    from echoquality.dicom import default_decode_cap

    mb = float(cfg.inference.max_decode_mb or 0)
    if mb > 0:
        return int(mb * 2**20)
    return default_decode_cap(cfg.preprocess.num_frames, cfg.preprocess.frame_stride)


def preprocess_signature(cfg: PreprocessConfig) -> str:
    """Short hash of everything that changes the model input (part of the cache key)."""
    text = json.dumps(asdict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- worker side


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
WORKER_DIED = "worker process died while decoding"


def _init_worker(cfg: PreprocessConfig, max_decode_bytes: int | None = None) -> None:
    """Worker initialiser: remember the config; one OpenCV thread per worker (processes give parallelism)."""
    global _WORKER_CFG, _WORKER_CAP
    _WORKER_CFG, _WORKER_CAP = cfg, max_decode_bytes
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001 - cv2 is optional for the initialiser
        pass


def _test_kill_hook(path: str) -> None:
    """SIGKILL this worker process when the test hook names *path* (never in the main process)."""
    spec = os.environ.get(KILL_HOOK_ENV)
    if not spec or multiprocessing.parent_process() is None:
        return
    name = Path(path).name
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
    from echoquality.dicom import SkipError, SkipReason, is_decoder_failure, read_info
    from echoquality.preprocess import load_clip, normalize_clip

    cfg = cfg or _WORKER_CFG or PreprocessConfig()
    cap = max_decode_bytes if max_decode_bytes is not None else _WORKER_CAP
    t0 = time.perf_counter()
    out = _Outcome(job.index)
    _test_kill_hook(job.path)
    try:
        out.info = read_info(Path(job.path), job.folder)
        _, clip = load_clip(Path(job.path), cfg, job.folder, info=out.info, max_decode_bytes=cap)
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
    kills a worker twice that way is reported as ``decode_error`` (:data:`WORKER_DIED`). Each file
    yields exactly one outcome. ``workers=0`` preprocesses inline, one job per iteration step.
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
    ) -> None:
        self.cfg, self.workers, self.start_method = cfg, workers, start_method
        self.max_decode_bytes = max_decode_bytes
        self.max_in_flight = max(max_in_flight, workers, 1)
        self._queue = deque(jobs)
        self._suspects: deque[_Job] = deque()  # in flight when a worker died: retried alone
        self._isolated: _Job | None = None  # the suspect now running alone
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
        if self._suspects or self._isolated is not None:
            if not self._pending and self._suspects:
                job = self._suspects.popleft()
                if self._submit(job):
                    self._isolated = job
                else:
                    self._suspects.appendleft(job)
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

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
                outcomes.append(_Outcome(job.index, reason="decode_error", detail=detail))
            if job is self._isolated:
                self._isolated = None
        return outcomes

    def _handle_death(self, died: list[_Job]) -> list[_Outcome]:
        """A worker died: report the suspect that died alone, queue the others as suspects, new pool."""
        outcomes = self._collect(cf.wait(list(self._pending)).done, died)  # the broken pool fails them all
        for job in died:
            if job is self._isolated:  # certainly the culprit: it ran alone
                self._isolated = None
                self._solo_deaths[job.index] = self._solo_deaths.get(job.index, 0) + 1
                if self._solo_deaths[job.index] >= 2:
                    outcomes.append(_Outcome(job.index, reason="decode_error", detail=WORKER_DIED))
                    continue
            self._suspects.append(job)
        self._restart_pool()
        return outcomes

    def __iter__(self) -> Iterator[_Outcome]:
        if self.workers <= 0:
            while self._queue:
                yield preprocess_job(self._queue.popleft(), self.cfg, self.max_decode_bytes)
            return
        self.start()
        while self._queue or self._suspects or self._pending:
            self._fill()
            if not self._pending:  # submitting failed: the pool is broken
                self._restart_pool()
                continue
            done, _ = cf.wait(list(self._pending), return_when=cf.FIRST_COMPLETED)
            died: list[_Job] = []
            outcomes = self._collect(done, died)
            if died:
                outcomes += self._handle_death(died)
            self._fill()  # keep the workers busy while the consumer handles these outcomes
            yield from outcomes


def iter_preprocessed(
    jobs: Sequence[_Job],
    cfg: PreprocessConfig,
    *,
    workers: int,
    max_in_flight: int,
    start_method: str = "spawn",
    max_decode_bytes: int | None = None,
) -> Iterator[_Outcome]:
    """One outcome per job, decoded in *workers* processes (see :class:`Prefetcher`)."""
    with Prefetcher(
        jobs,
        cfg,
        workers=workers,
        max_in_flight=max_in_flight,
        start_method=start_method,
        max_decode_bytes=max_decode_bytes,
    ) as pf:
        yield from pf


# --------------------------------------------------------------------------- state (cache)


def _load_state(path: Path, weights_sha: str, pre_hash: str) -> dict[str, FileResult]:
    """Cached results of a folder, only when they were produced with the same weights and preprocessing."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        return {}
    if data.get("weights_sha256") != weights_sha or data.get("preprocess_hash") != pre_hash:
        return {}
    files = data.get("files") or {}
    return {k: FileResult.from_state(v) for k, v in files.items() if isinstance(v, dict)}


def _save_state(path: Path, results: dict[str, FileResult], weights_sha: str, pre_hash: str) -> None:
    atomic_write_json(
        path,
        {
            "format": STATE_FORMAT,
            "weights_sha256": weights_sha,
            "preprocess_hash": pre_hash,
            "files": {k: r.to_state() for k, r in sorted(results.items())},
        },
    )


def _file_stat(path: Path) -> tuple[int | None, int | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _clean_output(out: Path, data_dir: Path) -> None:
    """Empty the output folder (never the input): refuses folders that do not look like our output."""
    if not out.exists():
        return
    out_r, data_r = out.resolve(), data_dir.resolve()
    if out_r == data_r or data_r.is_relative_to(out_r):
        raise InferenceError(f"--clean refused: the output folder {out} contains the data folder {data_dir}")
    entries = list(out.iterdir())
    if entries and not any((out / n).exists() for n in ("run_info.json", "summary.json")):
        raise InferenceError(
            f"--clean refused: {out} is not empty and does not look like an echoquality output folder "
            "(no run_info.json or summary.json); remove it yourself or choose another --output"
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _gradcam_function() -> Callable[..., Any]:
    try:
        from echoquality.gradcam import save_gradcam
    except ImportError as exc:
        raise InferenceError(
            "--gradcam is not available: the module echoquality.gradcam is missing or broken "
            f"({exc}); run without --gradcam"
        ) from exc
    return save_gradcam


def _file_result(f: InputFile, path_text: str) -> FileResult:
    from echoquality.dicom import normalize_machine_type

    size, mtime = _file_stat(f.path)
    return FileResult(
        folder=f.folder,
        key=f.key,
        file_id=f.path.name,
        path=path_text,
        machine_type=normalize_machine_type(None, f.folder),  # refined from the header once read
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


# --------------------------------------------------------------------------- the run


def run_inference(
    cfg: EchoConfig,
    *,
    weights: Path,
    force: bool = False,
    clean: bool = False,
    progress: bool = True,
    console: Any = None,
) -> InferenceSummary:
    """Score every file under ``cfg.inference.data_dir`` and write all outputs; see the module docstring.

    Raises :class:`InferenceError` for usage problems and ``echoquality.model.WeightsError`` for weights
    that are missing or do not fit; per-file problems never raise (they are recorded as skips).
    """
    import torch
    from rich.console import Console

    from echoquality.model import (
        architecture_of,
        load_state_dict_checked,
        model_from_state_dict,
        predict_scores,
        resolve_device,
    )
    from echoquality.provenance import package_versions
    from echoquality.weights import is_reference, sha256_of, weights_note

    console = console or Console()
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    icfg = cfg.inference
    try:
        threshold = validate_threshold(icfg.threshold)
        device = resolve_device(icfg.device)
    except ValueError as exc:
        raise InferenceError(str(exc)) from exc
    data_dir, out = Path(icfg.data_dir), Path(icfg.output_dir)
    if not data_dir.is_dir():
        raise InferenceError(
            f"data folder not found: {data_dir} (expected one sub-folder per study/device, e.g. "
            f"{data_dir}/epiq7-PATIENT01/...; `echoquality synth --output {data_dir}` makes a synthetic one)"
        )
    gradcam_fn = _gradcam_function() if icfg.gradcam else None

    # Weights first: nothing is touched on disk unless they load.
    weights = Path(weights)
    state_dict = load_state_dict_checked(weights)
    weights_sha = sha256_of(weights)
    arch = architecture_of(state_dict)
    note = weights_note(weights, weights_sha, arch)
    pre_hash = preprocess_signature(cfg.preprocess)

    if clean:
        _clean_output(out, data_dir)
    previous = _read_json(out / "run_info.json")
    if previous and not force:
        if previous.get("weights_sha256") != weights_sha or previous.get("preprocess_hash") != pre_hash:
            what = "weights" if previous.get("weights_sha256") != weights_sha else "preprocessing settings"
            raise InferenceError(
                f"{out} holds results made with other {what} "
                f"(weights sha256 {str(previous.get('weights_sha256'))[:12]}..., preprocessing "
                f"{previous.get('preprocess_hash')}); choose another --output, or --force to re-score "
                "and replace them, or --clean to start afresh"
            )
    out.mkdir(parents=True, exist_ok=True)

    folders = discover(data_dir, exclude=[out])
    if not folders:
        raise InferenceError(
            f"no sub-folders in {data_dir}: put each study/device in its own sub-folder "
            f"(e.g. {data_dir}/epiq7-PATIENT01/<files>)"
        )

    # Reuse cached results; collect the work.
    results: dict[str, dict[str, FileResult]] = {name: {} for name in folders}
    jobs: list[_Job] = []
    job_files: list[InputFile] = []
    reused = 0
    for name, files in folders.items():
        cache = {} if force else _load_state(out / name / STATE_FILE, weights_sha, pre_hash)
        for f in files:
            if f.skip is not None:  # not a file (directory named *.dcm, FIFO, dangling link, ...)
                r = _file_result(f, str(data_dir / f.folder / f.key))
                r.skip_reason, r.skip_detail = f.skip
                results[name][f.key] = r
                continue
            size, mtime = _file_stat(f.path)
            hit = cache.get(f.key)
            if hit is not None and hit.size == size and hit.mtime_ns == mtime:
                if hit.score is not None:
                    hit.status, hit.assessment = status_for(hit.score, threshold), assessment_for(hit.score)
                results[name][f.key] = hit
                reused += 1
            else:
                jobs.append(_Job(len(jobs), str(f.path), name, want_clip=gradcam_fn is not None))
                job_files.append(f)

    # Start decoding in the workers now: their start-up overlaps with building the model.
    batch_size = max(1, int(icfg.batch_size))
    workers = max(0, int(icfg.num_workers))
    max_in_flight = icfg.max_in_flight or (2 * batch_size + 2 * workers)
    prefetcher = Prefetcher(
        jobs,
        cfg.preprocess,
        workers=workers,
        max_in_flight=max_in_flight,
        start_method=icfg.start_method,
        max_decode_bytes=decode_cap(cfg),
    )
    if jobs:
        prefetcher.start()
    try:
        model = model_from_state_dict(state_dict, device)
    except BaseException:
        prefetcher.close()
        raise
    del state_dict

    dirty: set[str] = set()
    last_flush = time.perf_counter()

    def flush(force_all: bool = False) -> None:
        nonlocal last_flush
        for name in sorted(set(results) if force_all else dirty):
            _save_state(out / name / STATE_FILE, results[name], weights_sha, pre_hash)
        dirty.clear()
        last_flush = time.perf_counter()

    batch: list[tuple[FileResult, np.ndarray, np.ndarray | None]] = []

    def run_batch() -> None:
        tensors = torch.from_numpy(np.stack([b[1] for b in batch]))
        scores = predict_scores(model, tensors)
        for (r, tensor, clip), score in zip(batch, scores, strict=True):
            r.score = float(score)
            r.status, r.assessment = status_for(r.score, threshold), assessment_for(r.score)
            results[r.folder][r.key] = r
            dirty.add(r.folder)
            if gradcam_fn is not None and clip is not None:
                target = out / r.folder / "gradcam" / f"{_safe_name(r.key)}_gradcam.gif"
                try:
                    gradcam_fn(model, torch.from_numpy(tensor), clip, target)
                except Exception as exc:  # noqa: BLE001 - a Grad-CAM failure must not stop scoring
                    console.print(f"[yellow]Grad-CAM failed for {r.path}: {exc}[/]")
        batch.clear()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
    )
    if jobs:
        console.print(
            f"Scoring {len(jobs)} file(s) ({reused} reused from earlier runs) on {device} "
            f"with {workers} worker(s), batch {batch_size}"
        )
    counts = {"scored": 0, "skipped": 0}

    def consume(outcome: _Outcome) -> None:
        f = job_files[outcome.index]
        r = _file_result(f, str(data_dir / f.folder / f.key))
        _apply_info(r, outcome.info)
        if outcome.tensor is None:
            r.skip_reason, r.skip_detail = outcome.reason or "other_errors", outcome.detail
            results[r.folder][r.key] = r
            dirty.add(r.folder)
            counts["skipped"] += 1
            bar.advance(task)
        else:
            batch.append((r, outcome.tensor, outcome.clip))
            if len(batch) >= batch_size:
                end_batch()

    def end_batch() -> None:
        n = len(batch)
        run_batch()
        counts["scored"] += n
        bar.advance(task, n)

    t_loop = time.perf_counter()
    try:
        with bar:
            task = bar.add_task("scoring", total=len(jobs), info="")
            for outcome in prefetcher:
                consume(outcome)
                bar.update(task, info=f"scored {counts['scored']}, skipped {counts['skipped']}")
                if time.perf_counter() - last_flush > FLUSH_EVERY_S:
                    flush()
            prefetcher.close()
            if batch:
                end_batch()
            bar.update(task, info=f"scored {counts['scored']}, skipped {counts['skipped']}")
    finally:
        prefetcher.close()
        flush()  # whatever finished survives an interruption
    scoring_s = time.perf_counter() - t_loop

    folder_results = []
    for name, files in folders.items():
        fr = FolderResult(name, [results[name][f.key] for f in files if f.key in results[name]])
        if not files:
            fr.error = "No DICOM files found (empty folder)"
        folder_results.append(fr)
    flush(force_all=True)

    summary = InferenceSummary(
        output_dir=out,
        folders=folder_results,
        threshold=threshold,
        weights_path=weights,
        weights_sha256=weights_sha,
        weights_is_reference=is_reference(weights_sha),
        weights_note=note,
        device=str(device),
        newly_scored=len(jobs),
        reused=reused,
        scoring_s=scoring_s,
        scored_this_run=counts["scored"],
    )
    write_run_outputs(summary, write_csv=icfg.write_csv)
    if icfg.write_plots:
        write_plots(summary)
    summary.elapsed_s = time.perf_counter() - t_start

    info = {
        "tool": "echoquality infer",
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "elapsed_s": round(summary.elapsed_s, 3),
        "data_dir": str(data_dir),
        "data_dir_absolute": str(data_dir.resolve()),
        "output_dir": str(out),
        "weights_path": str(weights),
        "weights_sha256": weights_sha,
        "weights_is_reference": summary.weights_is_reference,
        "weights_note": note,
        "architecture": arch,
        "device": str(device),
        "threshold": threshold,
        "preprocess_hash": pre_hash,
        "files_total": summary.total_files,
        "files_processed_this_run": len(jobs),
        "files_scored_this_run": counts["scored"],
        "files_reused": reused,
        "scoring_s": round(scoring_s, 3),
        "force": force,
        "clean": clean,
        "versions": package_versions(
            "torch", "torchvision", "pydicom", "opencv-python-headless", "matplotlib", "pylibjpeg"
        ),
        "torch_version": torch.__version__,
        "config": cfg.to_dict(),
    }
    atomic_write_json(out / "run_info.json", info)
    with (out / "run_history.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({k: info[k] for k in info if k != "config"}, default=str) + "\n")
    return summary


def format_exception(exc: BaseException) -> str:
    """One-line description of an unexpected error (for the CLI)."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
