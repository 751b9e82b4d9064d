"""Frame decoding: only the requested frames, as true-RGB uint8, after the size checks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .codecs import PILLOW_FIRST, check_decoder, decode_error, is_decoder_failure, transfer_syntax, ts_label
from .colour import ColourPlan, colour_plan
from .eligibility import SkipError, SkipReason, check_decodable
from .header import DicomHeader, DicomInfo, info_from_dataset, read_header

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset

log = logging.getLogger("echoquality.dicom")


def read_frames(
    path: Path,
    indices: Sequence[int],
    info: DicomInfo | None = None,
    *,
    max_bytes: int | None = None,
    header: DicomHeader | None = None,
) -> np.ndarray:
    """Decode only frames *indices* of *path* as true-RGB uint8, shape (len(indices), H, W, 3).

    *header* is the file's :class:`DicomHeader` when the caller already read it (else it is read here).
    Duplicate or unsorted indices are allowed (each distinct frame is decoded once). Sizes are checked
    against the pixel data and the decode cap *max_bytes* first (:func:`check_decodable`). Raises
    SkipError(DECODE_ERROR) naming the transfer syntax and codec when decoding fails (a decoder panic
    included), or SkipError(EMPTY_PIXEL_ARRAY) when the file holds no pixel data.
    """
    path = Path(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, "no frames requested")
    header = header if header is not None else read_header(path)
    ds = header.ds
    if info is None:
        info = info_from_dataset(ds, path, pixels=header.pixels)
    n_frames = max(info.num_frames, 1)
    bad = [i for i in indices if i < 0 or i >= n_frames]
    if bad:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"frame index {bad[0]} outside 0..{n_frames - 1}")
    if info.rows < 1 or info.columns < 1:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"image size {info.rows}x{info.columns}")
    wanted = sorted(set(indices))
    check_decoder(ds)
    check_decodable(info, wanted, max_bytes)
    plan = colour_plan(ds)
    decoded: dict[int, np.ndarray] = {}
    try:
        decoded = _decode_selected(path, ds, wanted, n_frames, plan)
    except SkipError:
        raise
    except BaseException as exc:
        if not is_decoder_failure(exc):
            raise
        raise decode_error(ds, exc) from exc
    missing = [i for i in wanted if i not in decoded]
    if missing:
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{ts_label(ds)}: frame {missing[0]} could not be decoded (pixel data too short?)",
        )
    if any(decoded[i].size == 0 for i in decoded):
        raise SkipError(SkipReason.EMPTY_PIXEL_ARRAY, f"decoded pixel array of {path.name} is empty")
    return np.stack([decoded[i] for i in indices])


def _decode_selected(
    path: Path, header: Dataset, wanted: list[int], n_frames: int, plan: ColourPlan
) -> dict[int, np.ndarray]:
    """Decode *wanted* frames one at a time (memory ~ one frame); full read only for files without
    file meta (raw datasets, assumed Implicit VR Little Endian)."""
    from pydicom.pixels import iter_pixels, pixel_array

    multi = n_frames > 1
    out: dict[int, np.ndarray] = {}
    ts = transfer_syntax(header)
    if ts is not None:
        # Pillow decodes JPEG Baseline/Extended about twice as fast as the default plugin order;
        # any failure retries with pydicom's default plugin choice.
        plugins = ["pillow", ""] if str(ts) in PILLOW_FIRST else [""]
        for n, plugin in enumerate(plugins):
            try:
                # Single-frame files are decoded without `indices` (NumberOfFrames may be absent).
                frames = iter_pixels(path, indices=wanted if multi else None, decoding_plugin=plugin)
                for idx, frame in zip(wanted if multi else [0], frames, strict=False):
                    out[idx] = plan.to_rgb(frame)
                return out
            except SkipError:
                raise
            except BaseException as exc:
                if n == len(plugins) - 1 or not is_decoder_failure(exc):
                    raise
                log.debug(
                    "decoding %s with %s failed (%s); retrying with the default plugin", path, plugin, exc
                )
                out.clear()
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(path, force=True)
    ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    for idx in wanted:
        out[idx] = plan.to_rgb(pixel_array(ds, index=idx if multi else None))
    return out
