"""DICOM reading for EchoQuality: content-based detection, header metadata, eligibility, frame decoding.

Design points (see docs/echoquality_preprocessing.md):

* Files are detected by content ("DICM" at offset 128, else a forced header parse), never by extension.
* Metadata is read with ``stop_before_pixels`` so deciding eligibility never decodes a cine.
* Stills and videos are told apart by NumberOfFrames and SamplesPerPixel, never by ``ndim``.
* Only the requested frames are decoded (``pydicom.pixels.iter_pixels(indices=...)``).
* Colour is made *true RGB* explicitly by PhotometricInterpretation: pydicom 3 already converts
  YBR_FULL/YBR_FULL_422 to RGB (and JPEG 2000 undoes RCT/ICT), so no second YBR conversion happens
  here; MONOCHROME1 is inverted, PALETTE COLOR goes through its LUT, >8-bit data is scaled to 8 bit.
* Every problem becomes a :class:`SkipError` with a :class:`SkipReason`, so a bad file never crashes
  a batch.
"""

from __future__ import annotations

import enum
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

#: SOP classes that hold ultrasound images (multi-frame, single-frame and their retired variants).
ULTRASOUND_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (Retired)
    }
)


class SkipReason(enum.StrEnum):
    """Why a file was not scored. Values are the keys written to result files (str(reason) == value)."""

    NOT_DICOM = "not_dicom"
    NOT_ULTRASOUND = "not_ultrasound"
    SINGLE_FRAME = "single_frame"
    DECODE_ERROR = "decode_error"
    EMPTY_PIXEL_ARRAY = "empty_pixel_array"
    INVALID_DIMENSIONS = "invalid_dimensions"
    MASKING_ERROR = "masking_error"
    SCALING_ERROR = "scaling_error"
    OTHER_ERRORS = "other_errors"


class SkipError(Exception):
    """Raised for every file that cannot be scored; ``reason`` is machine-readable, ``detail`` human text."""

    def __init__(self, reason: SkipReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = SkipReason(reason)
        self.detail = detail

    def __reduce__(self):  # keep picklable across worker processes
        return (self.__class__, (self.reason, self.detail))


@dataclass
class DicomInfo:
    """Header metadata of one file, read without decoding pixels."""

    path: Path
    modality: str | None
    sop_class_uid: str | None
    manufacturer: str | None
    model: str | None
    machine_type: str
    patient_id: str | None
    study_uid: str | None
    sop_uid: str | None
    num_frames: int
    fps: float | None
    rows: int
    columns: int
    photometric: str | None
    transfer_syntax: str | None  # UID name, e.g. "JPEG Baseline (Process 1)"
    samples_per_pixel: int
    bits_stored: int | None
    # 2D ultrasound regions (x0, y0, x1, y1), inclusive pixel bounds, kept only when inside the image
    us_regions: tuple[tuple[int, int, int, int], ...] = ()


# --------------------------------------------------------------------------------------------
# Detection and metadata
# --------------------------------------------------------------------------------------------


def is_dicom(path: Path) -> bool:
    """True when *path* is a DICOM file by content ("DICM" preamble, or a plausible forced parse)."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Preamble-less stream: must start with a file-meta (0002) or identifying (0008) group tag,
    # little or big endian; this cheap test avoids force-parsing arbitrary large files.
    if head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return False
    return _header_without_preamble(path) is not None


def _header_without_preamble(path: Path) -> Dataset | None:
    """Parse a preamble-less (raw) DICOM stream; None unless it looks like a real image header."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, defer_size="64 KB")
        keys = list(ds.keys())
    except Exception:
        return None
    if not keys:
        return None
    # A forced parse of random bytes yields nonsense tags; real headers start with low groups
    # and carry identifying elements.
    if keys[0].group > 0x0010 or not any(k in ds for k in ("SOPClassUID", "Modality", "StudyInstanceUID")):
        return None
    return ds


_MODEL_CLEAN = re.compile(r"[^a-z0-9]+")


def normalize_machine_type(model: str | None, folder_name: str | None) -> str:
    """Machine type token: normalised ManufacturerModelName ("EPIQ 7C" -> "epiq7c"), else the folder
    prefix before the first '-' (the origin's convention), else "unknown"."""
    if model:
        token = _MODEL_CLEAN.sub("", str(model).lower())
        if token:
            return token
    if folder_name and "-" in folder_name:
        prefix = folder_name.split("-", 1)[0].strip().lower()
        if prefix:
            return prefix
    return "unknown"


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _positive_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def frame_rate(ds: Dataset) -> float | None:
    """Acquisition frame rate (frames/s) from FrameTime, FrameTimeVector, CineRate or
    RecommendedDisplayFrameRate, in that order; None when no usable tag exists."""
    ft = _positive_float(ds.get("FrameTime"))
    if ft is not None:
        return 1000.0 / ft
    ftv = ds.get("FrameTimeVector")
    if ftv is not None:
        try:
            values = [float(v) for v in (ftv if isinstance(ftv, Sequence | list) else [ftv])]
        except (TypeError, ValueError):
            values = []
        # The first entry is the offset of frame 0 (usually 0): average the real intervals.
        intervals = [v for v in values[1:] if math.isfinite(v) and v > 0] or [
            v for v in values if math.isfinite(v) and v > 0
        ]
        if intervals:
            return 1000.0 / (sum(intervals) / len(intervals))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _positive_float(ds.get(key))
        if rate is not None:
            return rate
    return None


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _read_header(path: Path) -> Dataset:
    """Header dataset (no pixel data) or SkipError(NOT_DICOM)."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise SkipError(SkipReason.NOT_DICOM, f"not a regular file: {path}")
    if not is_dicom(path):
        raise SkipError(SkipReason.NOT_DICOM, f"no DICOM header found in {path.name}")
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # broken header after a valid preamble
        raise SkipError(SkipReason.NOT_DICOM, f"unreadable DICOM header in {path.name}: {exc}") from exc


def _transfer_syntax(ds: Dataset) -> Any:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return uid


def info_from_dataset(ds: Dataset, path: Path, folder_name: str | None = None) -> DicomInfo:
    """Build :class:`DicomInfo` from an already-read header dataset."""
    model = _str_or_none(ds.get("ManufacturerModelName"))
    ts = _transfer_syntax(ds)
    ts_name = ts.name if ts is not None else None  # unknown UIDs: the UID itself
    return DicomInfo(
        path=Path(path),
        modality=_str_or_none(ds.get("Modality")),
        sop_class_uid=_str_or_none(ds.get("SOPClassUID")),
        manufacturer=_str_or_none(ds.get("Manufacturer")),
        model=model,
        machine_type=normalize_machine_type(model, folder_name),
        patient_id=_str_or_none(ds.get("PatientID")),
        study_uid=_str_or_none(ds.get("StudyInstanceUID")),
        sop_uid=_str_or_none(ds.get("SOPInstanceUID")),
        num_frames=max(_int_or(ds.get("NumberOfFrames"), 1), 0),
        fps=frame_rate(ds),
        rows=_int_or(ds.get("Rows"), 0),
        columns=_int_or(ds.get("Columns"), 0),
        photometric=_str_or_none(ds.get("PhotometricInterpretation")),
        transfer_syntax=ts_name,
        samples_per_pixel=_int_or(ds.get("SamplesPerPixel"), 1),
        bits_stored=_int_or(ds.get("BitsStored"), 0) or None,
        us_regions=ultrasound_regions(ds),
    )


def ultrasound_regions(ds: Dataset) -> tuple[tuple[int, int, int, int], ...]:
    """Bounding boxes of the 2D regions in SequenceOfUltrasoundRegions that fit inside the image.

    Regions are sanity-checked against Rows/Columns: some files (e.g. pydicom's SonoSite sample)
    carry coordinates of a larger acquisition frame, which must not be used.
    """
    rows, cols = _int_or(ds.get("Rows"), 0), _int_or(ds.get("Columns"), 0)
    boxes = []
    try:
        regions = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    except Exception:
        return ()
    for region in regions:
        if _int_or(region.get("RegionSpatialFormat"), 0) != 1:  # 1 = 2D tissue/flow image
            continue
        box = tuple(
            _int_or(region.get(k), -1)
            for k in (
                "RegionLocationMinX0",
                "RegionLocationMinY0",
                "RegionLocationMaxX1",
                "RegionLocationMaxY1",
            )
        )
        x0, y0, x1, y1 = box
        # tolerate the common off-by-one (max = Columns/Rows) by clipping to the last pixel
        if 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows:
            boxes.append((x0, y0, min(x1, cols - 1), min(y1, rows - 1)))
    return tuple(boxes)


def read_info(path: Path, folder_name: str | None = None) -> DicomInfo:
    """Read header metadata without touching pixel data. Raises SkipError(NOT_DICOM)."""
    path = Path(path)
    if folder_name is None:
        folder_name = path.parent.name or None
    ds = _read_header(path)
    try:
        return info_from_dataset(ds, path, folder_name)
    except SkipError:
        raise
    except Exception as exc:  # malformed values (e.g. non-numeric Rows)
        raise SkipError(
            SkipReason.OTHER_ERRORS, f"cannot interpret DICOM header of {path.name}: {exc}"
        ) from exc


def check_eligible(info: DicomInfo) -> None:
    """Raise SkipError unless *info* describes an ultrasound cine the model can score."""
    modality = (info.modality or "").upper()
    is_us_class = info.sop_class_uid in ULTRASOUND_SOP_CLASSES
    if modality != "US" and not (not modality and is_us_class):
        raise SkipError(
            SkipReason.NOT_ULTRASOUND,
            f"Modality is {info.modality or 'missing'} (SOP class {info.sop_class_uid}), not ultrasound (US)",
        )
    if info.rows < 1 or info.columns < 1:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"image size {info.rows}x{info.columns}")
    if info.samples_per_pixel not in (1, 3):
        raise SkipError(
            SkipReason.INVALID_DIMENSIONS, f"SamplesPerPixel {info.samples_per_pixel} is not 1 or 3"
        )
    if info.num_frames <= 1:
        raise SkipError(
            SkipReason.SINGLE_FRAME,
            f"single-frame image (NumberOfFrames {info.num_frames}, SamplesPerPixel {info.samples_per_pixel})",
        )


# --------------------------------------------------------------------------------------------
# Frame decoding
# --------------------------------------------------------------------------------------------

_CODEC_HINTS: list[tuple[tuple[str, ...], str]] = [
    (
        ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"),
        "Pillow, pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    ),
    (("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"), "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm"),
    (
        ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
        "pyjpegls, pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    ),
    (
        (
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.4.201",
            "1.2.840.10008.1.2.4.202",
            "1.2.840.10008.1.2.4.203",
        ),
        "pylibjpeg + pylibjpeg-openjpeg, Pillow, or python-gdcm",
    ),
    (("1.2.840.10008.1.2.5",), "pylibjpeg + pylibjpeg-rle (or pydicom's built-in RLE decoder)"),
]
_PILLOW_FIRST = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})
_VIDEO_PREFIXES = ("1.2.840.10008.1.2.4.10", "1.2.840.10008.1.2.4.11")  # MPEG-2 / MPEG-4 / HEVC


def codec_hint(transfer_syntax_uid: str | None) -> str:
    """The plugin(s) needed to decode a transfer syntax, for error messages."""
    uid = str(transfer_syntax_uid or "")
    for uids, hint in _CODEC_HINTS:
        if uid in uids:
            return hint
    if uid.startswith(_VIDEO_PREFIXES):
        return "a video decoder; pydicom 3 cannot decode MPEG/H.264/HEVC - convert the cine with ffmpeg/dcmtk first"
    return "a pydicom pixel-data plugin supporting it"


def _ts_label(ds: Dataset) -> str:
    ts = _transfer_syntax(ds)
    if ts is None:
        return "unknown transfer syntax (no file meta)"
    return f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)


def _scale_to_uint8(arr: np.ndarray, bits: int | None, signed: bool) -> np.ndarray:
    """Map integer samples with *bits* significant bits onto 0-255."""
    if arr.dtype == np.uint8:
        return arr
    bits = bits or int(arr.dtype.itemsize * 8)
    a = arr.astype(np.float32)
    if signed:
        a += float(2 ** (bits - 1))
    a *= 255.0 / float(2**bits - 1)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


@dataclass
class _ColourPlan:
    """How to turn one decoded frame into true RGB uint8 (computed once per file)."""

    photometric: str
    bits: int | None
    signed: bool
    palette: np.ndarray | None = None  # (N, 3) uint8 lookup table for PALETTE COLOR

    def to_rgb(self, frame: np.ndarray) -> np.ndarray:
        if self.palette is not None:
            idx = np.clip(frame.astype(np.int64, copy=False), 0, len(self.palette) - 1)
            return self.palette[idx]
        if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 1):
            grey = _scale_to_uint8(frame.reshape(frame.shape[:2]), self.bits, self.signed)
            if self.photometric == "MONOCHROME1":
                grey = 255 - grey
            return np.repeat(grey[:, :, None], 3, axis=2)
        if frame.ndim == 3 and frame.shape[-1] == 3:
            # RGB, or YBR_* already converted to RGB by pydicom (as_rgb=True) / the JPEG 2000 codec.
            return _scale_to_uint8(frame, self.bits, self.signed)
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"decoded frame has unexpected shape {frame.shape}")


def _palette_table(ds: Dataset) -> np.ndarray:
    """Full PALETTE COLOR lookup table as (N, 3) uint8, scaled from 16-bit entries when needed."""
    from pydicom.pixels import apply_color_lut

    bits = _int_or(ds.get("BitsStored"), 8) or 8
    n = 2 ** min(bits, 16)
    table = apply_color_lut(np.arange(n, dtype=np.uint16 if n > 256 else np.uint8), ds)
    table = np.asarray(table).reshape(n, 3)
    if table.dtype != np.uint8:
        # Entries are nominally 16-bit; some writers store 8-bit values in 16-bit words.
        scale = 257.0 if table.max() > 255 else 1.0
        table = np.clip(np.rint(table / scale), 0, 255).astype(np.uint8)
    return table


def colour_plan(ds: Dataset) -> _ColourPlan:
    """Colour handling for the dataset's PhotometricInterpretation."""
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    bits = _int_or(ds.get("BitsStored"), 0) or None
    signed = _int_or(ds.get("PixelRepresentation"), 0) == 1
    palette = None
    if photometric == "PALETTE COLOR":
        try:
            palette = _palette_table(ds)
        except Exception as exc:
            raise SkipError(SkipReason.DECODE_ERROR, f"PALETTE COLOR lookup table unusable: {exc}") from exc
    return _ColourPlan(photometric=photometric, bits=bits, signed=signed, palette=palette)


def _decode_error(ds: Dataset, exc: BaseException) -> SkipError:
    ts = _transfer_syntax(ds)
    text = str(exc)
    if isinstance(exc, MemoryError):
        return SkipError(SkipReason.OTHER_ERRORS, f"out of memory decoding {_ts_label(ds)}")
    if isinstance(exc, AttributeError) and "no pixel data" in text.lower():
        return SkipError(SkipReason.EMPTY_PIXEL_ARRAY, f"no pixel data: {text}")
    # A decoder was available (checked before): the data itself is bad, typically a truncated copy.
    return SkipError(
        SkipReason.DECODE_ERROR,
        f"cannot decode {_ts_label(ds)} pixel data (truncated or corrupt file?; codecs: {codec_hint(ts)}): {text}",
    )


def _check_decoder(ds: Dataset) -> None:
    """Fail fast, with the plugin to install, when no decoder is available for the transfer syntax."""
    from pydicom.pixels import get_decoder

    ts = _transfer_syntax(ds)
    if ts is None:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{_ts_label(ds)} needs {codec_hint(ts)}: no pydicom decoder exists for it",
        ) from None
    if not decoder.is_available:
        missing = "; ".join(f"{name}: {', '.join(deps)}" for name, deps in decoder.missing_dependencies)
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{_ts_label(ds)} needs {codec_hint(ts)} (no decoding plugin installed; missing {missing})",
        )


def read_frames(path: Path, indices: Sequence[int], info: DicomInfo | None = None) -> np.ndarray:
    """Decode only frames *indices* of *path* as true-RGB uint8, shape (len(indices), H, W, 3).

    Duplicate or unsorted indices are allowed (each distinct frame is decoded once). Raises
    SkipError(DECODE_ERROR) naming the transfer syntax and codec when decoding fails, or
    SkipError(EMPTY_PIXEL_ARRAY) when the file holds no pixel data.
    """
    path = Path(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, "no frames requested")
    ds = _read_header(path)
    if info is None:
        info = info_from_dataset(ds, path)
    n_frames = max(info.num_frames, 1)
    bad = [i for i in indices if i < 0 or i >= n_frames]
    if bad:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"frame index {bad[0]} outside 0..{n_frames - 1}")
    if info.rows < 1 or info.columns < 1:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"image size {info.rows}x{info.columns}")
    plan = colour_plan(ds)
    _check_decoder(ds)
    wanted = sorted(set(indices))
    decoded: dict[int, np.ndarray] = {}
    try:
        decoded = _decode_selected(path, ds, wanted, n_frames, plan)
    except SkipError:
        raise
    except Exception as exc:
        raise _decode_error(ds, exc) from exc
    missing = [i for i in wanted if i not in decoded]
    if missing:
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{_ts_label(ds)}: frame {missing[0]} could not be decoded (pixel data too short?)",
        )
    if any(decoded[i].size == 0 for i in decoded):
        raise SkipError(SkipReason.EMPTY_PIXEL_ARRAY, f"decoded pixel array of {path.name} is empty")
    return np.stack([decoded[i] for i in indices])


def _decode_selected(
    path: Path, header: Dataset, wanted: list[int], n_frames: int, plan: _ColourPlan
) -> dict[int, np.ndarray]:
    """Decode *wanted* frames one at a time (memory ~ one frame); full read only for files without
    file meta (raw datasets, assumed Implicit VR Little Endian)."""
    from pydicom.pixels import iter_pixels, pixel_array

    multi = n_frames > 1
    out: dict[int, np.ndarray] = {}
    ts = _transfer_syntax(header)
    if ts is not None:
        # Pillow decodes JPEG Baseline/Extended about twice as fast as the default plugin order;
        # any failure retries with pydicom's default plugin choice.
        plugins = ["pillow", ""] if str(ts) in _PILLOW_FIRST else [""]
        for n, plugin in enumerate(plugins):
            try:
                # Single-frame files are decoded without `indices` (NumberOfFrames may be absent).
                frames = iter_pixels(path, indices=wanted if multi else None, decoding_plugin=plugin)
                for idx, frame in zip(wanted if multi else [0], frames, strict=False):
                    out[idx] = plan.to_rgb(frame)
                return out
            except SkipError:
                raise
            except Exception as exc:
                if n == len(plugins) - 1:
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
