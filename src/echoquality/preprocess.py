"""From a DICOM cine to the quality model's input tensor.

Pipeline (reproduces the reference model's training input, see docs/echoquality_preprocessing.md):

1. ``sample_indices``: which frames to decode (default 0, 2, ..., 30 -> 16 frames);
2. ``dicom.read_frames``: decode only those frames, true RGB uint8;
3. ``sector_mask``: keep the ultrasound sector, zero the burned-in text / ECG outside it
   (computed from the decoded, sampled frames);
4. square centre crop, 10 % zoom crop per side, bicubic resize to ``image_size``, BGR order
   -> ``load_clip`` returns this uint8 (t, S, S, 3) clip (what training caches and augments);
5. ``normalize_clip``: per-channel (x - mean) / std, then zero frames appended *after*
   normalisation up to ``num_frames`` -> float32 (3, num_frames, S, S).

Decoding frames 0, 2, ..., 30 and padding to 16 after normalisation gives exactly the tensor of the
reference implementation (pad the full clip to 32 frames after normalisation, then take 0:32:2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import PreprocessConfig
from .dicom import (
    DicomHeader,
    DicomInfo,
    SkipError,
    SkipReason,
    check_eligible,
    default_decode_cap,
    is_decoder_failure,
    read_frames,
    read_header,
)

log = logging.getLogger(__name__)

#: A mask covering less than this fraction of the image is considered a failure (fallback: no mask).
MIN_MASK_FRACTION = 0.02
#: Smallest frame side (pixels) we accept before cropping; smaller images raise SCALING_ERROR.
MIN_FRAME_SIDE = 16
_KERNEL = np.ones((3, 3), np.uint8)
_ERODE_ITERATIONS = 10  # removes structures thinner than ~20 px (ECG trace, text strokes)


# --------------------------------------------------------------------------------------------
# Frame sampling
# --------------------------------------------------------------------------------------------


def sample_indices(num_frames_in_file: int, fps: float | None, cfg: PreprocessConfig) -> list[int]:
    """Frame indices to decode.

    Default: ``start_frame, start_frame + frame_stride, ...`` below ``num_frames_in_file``, at most
    ``cfg.num_frames`` of them (short clips give fewer; ``normalize_clip`` pads).

    ``cfg.fps_aware``: cover the same time window as the reference at ``reference_fps``
    (``num_frames * frame_stride / reference_fps`` seconds) whatever the acquisition rate, by picking
    the nearest frame to each reference time point. Slow acquisitions may repeat a frame; the window
    is cut at the end of the clip. A missing/invalid *fps* uses ``cfg.default_fps``.
    """
    n = int(num_frames_in_file)
    start = max(int(cfg.start_frame), 0)
    if n <= 0 or start >= n or cfg.num_frames <= 0:
        return []
    if not cfg.fps_aware:
        # never materialise a range over the header's frame count (it may be 2**31 - 1)
        stride = max(int(cfg.frame_stride), 1)
        count = min(int(cfg.num_frames), (n - start + stride - 1) // stride)
        return [start + k * stride for k in range(count)]
    rate = fps if fps is not None and np.isfinite(fps) and fps > 0 else cfg.default_fps
    step = max(int(cfg.frame_stride), 1) * float(rate) / float(cfg.reference_fps)  # source frames per sample
    out: list[int] = []
    for k in range(cfg.num_frames):
        idx = start + int(np.floor(k * step + 0.5))
        if idx >= n:
            break
        out.append(idx)
    return out


# --------------------------------------------------------------------------------------------
# Sector mask
# --------------------------------------------------------------------------------------------


@dataclass
class MaskResult:
    """A sector mask and how it was obtained."""

    mask: np.ndarray  # (H, W) bool
    fraction: float  # fraction of the image covered by the heuristic mask
    fallback: bool  # True when the heuristic failed (mask from the US regions or the whole image)
    source: str = "heuristic"  # heuristic | regions | none


def compute_mask(frames_rgb: np.ndarray, regions: tuple[tuple[int, int, int, int], ...] = ()) -> MaskResult:
    """Sector-mask heuristic with its diagnostics (see :func:`sector_mask`).

    When the heuristic fails (< 2 % of the image), the sanity-checked SequenceOfUltrasoundRegions
    boxes *regions* ((x0, y0, x1, y1), inclusive) are used if given, else the whole image is kept.
    """
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or frames_rgb.shape[0] < 1:
        raise SkipError(
            SkipReason.MASKING_ERROR, f"expected (T, H, W, 3) frames, got shape {frames_rgb.shape}"
        )
    h, w = frames_rgb.shape[1:3]
    if h < 3 or w < 3:
        raise SkipError(SkipReason.MASKING_ERROR, f"frames too small to mask ({h}x{w})")
    ever_lit = frames_rgb.max(axis=0).any(axis=2)  # non-zero in some frame and channel (fast max-reduce)
    if not ever_lit.any():
        raise SkipError(SkipReason.MASKING_ERROR, "every decoded frame is black")
    # 1) ever non-zero, eroded: thin overlays (ECG trace, text strokes) disappear.
    support = cv2.erode(ever_lit.astype(np.uint8), _KERNEL, iterations=_ERODE_ITERATIONS)
    # 2) changes between first and last frame: static overlays (text, scale, logos) disappear.
    changed = (frames_rgb[0] != frames_rgb[-1]).any(axis=2)
    core = (support.astype(bool) & changed).astype(np.uint8)
    core = cv2.dilate(core, _KERNEL, iterations=_ERODE_ITERATIONS)
    mask = _hull_of_largest(core)
    fraction = float(mask.mean())
    if fraction >= MIN_MASK_FRACTION:
        return MaskResult(mask, fraction, False)
    boxes = [(x0, y0, x1, y1) for x0, y0, x1, y1 in regions if 0 <= x0 < x1 < w and 0 <= y0 < y1 < h]
    if boxes:
        region_mask = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in boxes:
            region_mask[y0 : y1 + 1, x0 : x1 + 1] = True
        log.warning(
            "sector mask covers %.1f%% of the image (< %.0f%%): clip is static or unusual; using the "
            "DICOM ultrasound region(s) instead",
            100 * fraction,
            100 * MIN_MASK_FRACTION,
        )
        return MaskResult(region_mask, fraction, True, "regions")
    log.warning(
        "sector mask covers %.1f%% of the image (< %.0f%%): clip is static or unusual; keeping the whole image",
        100 * fraction,
        100 * MIN_MASK_FRACTION,
    )
    return MaskResult(np.ones((h, w), bool), fraction, True, "none")


def _hull_of_largest(core: np.ndarray, keep_ratio: float = 0.2) -> np.ndarray:
    """Filled convex hulls of the largest connected region and of regions at least *keep_ratio* of it."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return np.zeros(core.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = areas.max()
    out = np.zeros(core.shape, np.uint8)
    for label in np.flatnonzero(areas >= keep_ratio * largest) + 1:
        x, y, bw, bh = stats[label, :4]
        region = (labels[y : y + bh, x : x + bw] == label).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        points = np.concatenate(contours) + np.array([x, y], dtype=np.int32)
        cv2.fillConvexPoly(out, cv2.convexHull(points), 1)
    return out.astype(bool)


def sector_mask(frames_rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool mask of the ultrasound sector of (T, H, W, 3) uint8 frames.

    Pixels that are non-zero in some frame (eroded to drop thin overlays) AND differ between the
    first and last frame (drops static text), dilated back, then the filled convex hull of the
    largest region(s). An all-black clip raises SkipError(MASKING_ERROR); a mask under 2 % of the
    image (static clip, unusual layout) falls back to the whole image with a logged warning
    (``load_clip`` first tries the file's ultrasound regions, see :func:`compute_mask`).
    """
    return compute_mask(frames_rgb).mask


# --------------------------------------------------------------------------------------------
# Crop / resize / normalise
# --------------------------------------------------------------------------------------------


def crop_box(height: int, width: int, zoom_fraction: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the square centre crop followed by the zoom crop on each side."""
    side = min(height, width)
    y0 = (height - side) // 2
    x0 = (width - side) // 2
    zoom = int(side * zoom_fraction)
    return y0 + zoom, y0 + side - zoom, x0 + zoom, x0 + side - zoom


def crop_and_resize(frames: np.ndarray, cfg: PreprocessConfig, mask: np.ndarray | None = None) -> np.ndarray:
    """Square centre crop, zoom crop, bicubic resize of (T, H, W, C) uint8 -> (T, S, S, C).

    With *mask* ((H, W) bool), pixels outside it are zeroed first (only inside the crop box, which
    is equivalent and avoids touching full-size frames).
    """
    t, h, w = frames.shape[:3]
    if min(h, w) < MIN_FRAME_SIDE:
        raise SkipError(SkipReason.SCALING_ERROR, f"frame {h}x{w} is smaller than {MIN_FRAME_SIDE} pixels")
    if not 0 <= cfg.zoom_fraction < 0.5:
        raise SkipError(SkipReason.SCALING_ERROR, f"zoom_fraction {cfg.zoom_fraction} must be in [0, 0.5)")
    if cfg.image_size < 1:
        raise SkipError(SkipReason.SCALING_ERROR, f"image_size {cfg.image_size} must be positive")
    y0, y1, x0, x1 = crop_box(h, w, cfg.zoom_fraction)
    if y1 - y0 < 2 or x1 - x0 < 2:
        raise SkipError(SkipReason.SCALING_ERROR, f"crop of a {h}x{w} frame is degenerate")
    keep = None if mask is None else np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    size = (cfg.image_size, cfg.image_size)
    out = np.empty((t, cfg.image_size, cfg.image_size, frames.shape[3]), np.uint8)
    for i in range(t):
        crop = frames[i, y0:y1, x0:x1]
        if keep is not None:
            crop = cv2.bitwise_and(crop, crop, mask=keep)
        out[i] = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
    return out


def frames_to_clip(
    frames_rgb: np.ndarray, cfg: PreprocessConfig, regions: tuple[tuple[int, int, int, int], ...] = ()
) -> np.ndarray:
    """Mask, crop and resize true-RGB frames -> uint8 BGR clip (t, S, S, 3).

    The mask is computed from the decoded (sampled) frames at full resolution; *regions* (the
    file's ultrasound regions) are only the fallback when the heuristic fails.
    """
    mask = compute_mask(frames_rgb, regions).mask if cfg.mask_sector else None
    clip = crop_and_resize(frames_rgb, cfg, mask)
    return np.ascontiguousarray(clip[..., ::-1])  # RGB -> BGR (the reference channel order)


def load_clip(
    path: Path,
    cfg: PreprocessConfig,
    folder_name: str | None = None,
    info: DicomInfo | None = None,
    *,
    max_decode_bytes: int | None = None,
    header: DicomHeader | None = None,
) -> tuple[DicomInfo, np.ndarray]:
    """Read, check, decode the sampled frames, mask, crop and resize one file.

    Returns ``(info, clip)`` with *clip* a uint8 BGR array (t, S, S, 3), t <= cfg.num_frames (not
    padded). Pass the file's *header* (``dicom.read_header``) when already read: it is read once.
    Decoding may allocate at most *max_decode_bytes* (default: ``default_decode_cap`` for the
    config's frames). Raises SkipError for every reason a file cannot be scored.
    """
    path = Path(path)
    try:
        if info is None:
            header = header if header is not None else read_header(path)
            info = header.info(folder_name)
        check_eligible(info)
        indices = sample_indices(info.num_frames, info.fps, cfg)
        if not indices:
            raise SkipError(
                SkipReason.INVALID_DIMENSIONS,
                f"no frame to sample: start_frame {cfg.start_frame} with {info.num_frames} frames",
            )
        cap = (
            default_decode_cap(cfg.num_frames, cfg.frame_stride)
            if max_decode_bytes is None
            else max_decode_bytes
        )
        frames = read_frames(path, indices, info, max_bytes=cap, header=header)
        return info, frames_to_clip(frames, cfg, info.us_regions)
    except SkipError:
        raise
    except MemoryError as exc:
        raise SkipError(SkipReason.OTHER_ERRORS, f"out of memory processing {path.name}") from exc
    except BaseException as exc:  # a bad file never crashes the caller (decoder panics included)
        if not is_decoder_failure(exc):
            raise
        raise SkipError(SkipReason.OTHER_ERRORS, f"{type(exc).__name__}: {exc}") from exc


def normalize_clip(clip_bgr_uint8: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 BGR clip (t, S, S, 3) -> float32 (3, cfg.num_frames, S, S).

    Per-channel ``(x - mean_bgr) / std_bgr``; clips shorter than ``num_frames`` get zero frames
    appended *after* normalisation (as the reference did); longer clips are cut.
    """
    clip = np.asarray(clip_bgr_uint8)
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a (t, H, W, 3) clip, got shape {clip.shape}")
    clip = clip[: cfg.num_frames]
    mean = np.asarray(cfg.mean_bgr, np.float32)
    std = np.asarray(cfg.std_bgr, np.float32)
    t, h, w = clip.shape[:3]
    out = np.zeros((3, cfg.num_frames, h, w), np.float32)
    normed = (clip.astype(np.float32) - mean) / std  # (t, H, W, 3)
    out[:, :t] = normed.transpose(3, 0, 1, 2)
    return out


def preprocess_file(
    path: Path, cfg: PreprocessConfig, folder_name: str | None = None
) -> tuple[DicomInfo, np.ndarray]:
    """``normalize_clip(load_clip(...))``: the float32 (3, num_frames, S, S) tensor inference feeds the model."""
    info, clip = load_clip(path, cfg, folder_name)
    return info, normalize_clip(clip, cfg)
