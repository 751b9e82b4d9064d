"""Animated previews, the model's-eye view and the cine film strip, made with the project's own decode
path (``dicom.read_info``/``read_frames``, ``preprocess.sample_indices``/``compute_mask``/``frames_to_clip``).

Everything is cached on disk under a key of (file path, size, mtime, mode, version), so a second open
costs a ``stat``. Generation is lazy (only what a page asks for) and runs in a worker pool, so a
10,000-clip run opens at once and fills in as the browser asks.

Privacy: by default every pixel outside the ultrasound sector (burned-in text: names, dates, IDs) is
black in the previews and the film strip -- the same sector mask the model input uses.
``masked=False`` (``review --raw-frames``) shows the raw frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from echoquality.config import PreprocessConfig
from echoquality.dicom import SkipError, check_eligible, default_decode_cap, read_frames, read_info
from echoquality.preprocess import compute_mask, crop_box, frames_to_clip, sample_indices

log = logging.getLogger(__name__)

VERSION = 1
THUMB_SIDE = 160
MASK_SIDE = 360
CINE_SIDE = 400
CINE_MAX_FRAMES = 96
CINE_COLUMNS = 8
CINE_CHUNK = 16  # frames decoded at once for the film strip (bounds memory)
KINDS = {
    "thumb": "thumb.webp",
    "input": "input.png",
    "mask": "mask.png",
    "meta": "meta.json",
    "cine": "cine.jpg",
}


class PreviewError(Exception):
    """No preview can be made for this file (the reason is per file, e.g. not a DICOM cine)."""


@dataclass(frozen=True)
class PreviewJob:
    """What a worker needs: the file, where to write, and how."""

    source: str
    out_dir: str
    kind: str  # "sampled" (thumb, input, mask, meta) | "cine"
    masked: bool
    cfg: PreprocessConfig


@dataclass(frozen=True)
class SampledMeta:
    """What the clip page shows about the model input (written as meta.json)."""

    indices: list[int]
    mask_fraction: float
    mask_source: str  # heuristic | regions | none
    fps: float | None
    num_frames: int
    cine_frames: list[int]  # source frame of each film-strip tile
    cine_columns: int


def cine_indices(num_frames: int, limit: int = CINE_MAX_FRAMES) -> list[int]:
    """Film-strip frames: all of them up to *limit*, else *limit* evenly spaced."""
    n = max(int(num_frames), 1)
    if n <= limit:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, limit)})


# ------------------------------------------------------------------------------------ workers


def _init_worker() -> None:
    """One OpenCV thread per worker: processes give the parallelism."""
    import cv2

    cv2.setNumThreads(1)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _resize(frame: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return frame
    return cv2.resize(
        frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def _decode_sampled(path: Path, cfg: PreprocessConfig):
    """The model's sampled frames (true RGB) and their sector mask, exactly as ``load_clip`` gets them."""
    info = read_info(path)
    check_eligible(info)
    indices = sample_indices(info.num_frames, info.fps, cfg)
    if not indices:
        raise SkipError("invalid_dimensions", "no frame to sample")
    frames = read_frames(path, indices, info, max_bytes=default_decode_cap(cfg.num_frames, cfg.frame_stride))
    return info, indices, frames, compute_mask(frames, info.us_regions)


def _write_sampled(job: PreviewJob) -> None:
    """thumb.webp (animated, masked by default), input.png (the 16 model frames), mask.png, meta.json."""
    import cv2
    from PIL import Image

    out = Path(job.out_dir)
    info, indices, frames, mres = _decode_sampled(Path(job.source), job.cfg)
    shown = frames * mres.mask[None, :, :, None] if job.masked else frames
    step = (indices[1] - indices[0]) if len(indices) > 1 else 1
    duration = int(round(1000 * step / (info.fps or job.cfg.default_fps)))
    thumbs = [Image.fromarray(_resize(f, THUMB_SIDE)) for f in shown]
    _atomic(
        out / KINDS["thumb"],
        lambda p: thumbs[0].save(
            p,
            format="WEBP",
            save_all=True,
            append_images=thumbs[1:],
            duration=max(duration, 20),
            loop=0,
            quality=70,
        ),
    )
    clip = frames_to_clip(frames, job.cfg, info.us_regions)[..., ::-1]  # BGR model input -> RGB to show
    rows = [np.concatenate(list(clip[i : i + 8]) + [np.zeros_like(clip[0])] * (8 - len(clip[i : i + 8])), axis=1)
            for i in range(0, len(clip), 8)]  # fmt: skip
    grid = np.concatenate(rows, axis=0)
    _atomic(out / KINDS["input"], lambda p: Image.fromarray(grid).save(p, format="PNG"))
    view = np.ascontiguousarray(shown[0])
    contours, _ = cv2.findContours(mres.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thick = max(1, max(view.shape[:2]) // 200)
    cv2.drawContours(view, contours, -1, (255, 220, 0), thick)
    y0, y1, x0, x1 = crop_box(view.shape[0], view.shape[1], job.cfg.zoom_fraction)
    cv2.rectangle(view, (x0, y0), (x1 - 1, y1 - 1), (0, 200, 255), thick)
    _atomic(out / KINDS["mask"], lambda p: Image.fromarray(_resize(view, MASK_SIDE)).save(p, format="PNG"))
    meta = SampledMeta(
        indices, round(mres.fraction, 4), mres.source, info.fps, info.num_frames, cine_indices(info.num_frames),
        CINE_COLUMNS,
    )  # fmt: skip
    _atomic(out / KINDS["meta"], lambda p: p.write_text(json.dumps(asdict(meta))))


def _write_cine(job: PreviewJob) -> None:
    """cine.jpg: the film strip (CINE_COLUMNS tiles a row), masked with the model's sector mask."""
    from PIL import Image

    path, out = Path(job.source), Path(job.out_dir)
    info, _, _, mres = _decode_sampled(path, job.cfg)
    wanted = cine_indices(info.num_frames)
    cap = default_decode_cap(CINE_CHUNK, 1)
    tiles: list[np.ndarray] = []
    for start in range(0, len(wanted), CINE_CHUNK):
        chunk = read_frames(path, wanted[start : start + CINE_CHUNK], info, max_bytes=cap)
        if job.masked:
            chunk = chunk * mres.mask[None, :, :, None]
        tiles.extend(_resize(f, CINE_SIDE) for f in chunk)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % CINE_COLUMNS)
    rows = [np.concatenate(tiles[i : i + CINE_COLUMNS], axis=1) for i in range(0, len(tiles), CINE_COLUMNS)]
    sheet = np.concatenate(rows, axis=0)
    _atomic(out / KINDS["cine"], lambda p: Image.fromarray(sheet).save(p, format="JPEG", quality=80))


def render(job: PreviewJob) -> str:
    """Worker entry point: write the files of *job*; raises PreviewError with a per-file reason."""
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    try:
        (_write_cine if job.kind == "cine" else _write_sampled)(job)
    except SkipError as exc:
        raise PreviewError(f"{exc.reason.value}: {exc.detail}") from None
    except (OSError, ValueError, MemoryError) as exc:
        raise PreviewError(f"{type(exc).__name__}: {exc}") from None
    return job.out_dir


# ------------------------------------------------------------------------------------ service


def cache_key(source: Path, masked: bool, cfg: PreprocessConfig) -> str | None:
    """Key of a file's previews: path, size, mtime, mode, version, preprocessing; None when unreadable."""
    try:
        st = Path(source).stat()
    except OSError:
        return None
    text = f"{source}|{st.st_size}|{st.st_mtime_ns}|{masked}|{VERSION}|{sorted(asdict(cfg).items())}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


@dataclass
class PreviewStats:
    generated: int = 0  # jobs finished by the pool
    reused: int = 0  # requests answered from the disk cache
    failed: int = 0
    pending: int = 0


class PreviewService:
    """Lazy, cached, pooled preview generation shared by the server's requests."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        masked: bool = True,
        workers: int = 2,
        cfg: PreprocessConfig | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.masked = masked
        self.workers = workers
        self.cfg = cfg or PreprocessConfig()
        self._executor = executor
        self._own_executor = executor is None
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Future] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self.stats = PreviewStats()

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.workers > 0:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=get_context("spawn"), initializer=_init_worker
                )
            else:
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="preview")
        return self._executor

    def request(self, source: Path, kind: str) -> Future:
        """A future of the cached file for *kind* (a key of KINDS); already done when cached."""
        job_kind = "cine" if kind == "cine" else "sampled"
        key = cache_key(source, self.masked, self.cfg)
        fut: Future = Future()
        if key is None:
            fut.set_exception(PreviewError("file not found"))
            return fut
        target = self.cache_dir / key[:2] / key / KINDS[kind]
        done_marker = target if job_kind == "cine" else target.parent / KINDS["meta"]
        with self._lock:
            if done_marker.is_file() and target.is_file():
                self.stats.reused += 1
                fut.set_result(target)
                return fut
            if (key, job_kind) in self._failed:
                fut.set_exception(PreviewError(self._failed[(key, job_kind)]))
                return fut
            job_fut = self._pending.get((key, job_kind))
            if job_fut is None:
                job = PreviewJob(str(source), str(target.parent), job_kind, self.masked, self.cfg)
                job_fut = self._submit(job)
                self._pending[(key, job_kind)] = job_fut
                self.stats.pending = len(self._pending)
                job_fut.add_done_callback(lambda f, k=(key, job_kind): self._finished(k, f))
        job_fut.add_done_callback(lambda f: _chain(f, fut, target))
        return fut

    def _submit(self, job: PreviewJob) -> Future:
        try:
            return self._pool().submit(render, job)
        except BrokenProcessPool:
            self._reset_pool()
            return self._pool().submit(render, job)

    def _reset_pool(self) -> None:
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _finished(self, key: tuple[str, str], f: Future) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self.stats.pending = len(self._pending)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None:
                self.stats.generated += 1
            elif isinstance(exc, PreviewError):
                self.stats.failed += 1
                self._failed[key] = str(exc)
            else:  # a crashed worker: rebuild the pool, let a later request retry
                self.stats.failed += 1
                log.warning("preview worker failed (%s); restarting the pool", exc)
                if isinstance(exc, BrokenProcessPool):
                    self._reset_pool()

    def shutdown(self) -> None:
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _chain(job_fut: Future, fut: Future, target: Path) -> None:
    if fut.done():
        return
    if job_fut.cancelled():
        fut.set_exception(PreviewError("cancelled"))
        return
    exc = job_fut.exception()
    if exc is not None:
        fut.set_exception(exc if isinstance(exc, PreviewError) else PreviewError("preview worker failed"))
    elif not target.is_file():
        fut.set_exception(PreviewError("preview missing after generation"))
    else:
        fut.set_result(target)


def read_meta(meta_path: Path) -> SampledMeta | None:
    try:
        return SampledMeta(**json.loads(Path(meta_path).read_text()))
    except (OSError, ValueError, TypeError):
        return None
