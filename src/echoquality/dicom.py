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
import os
import re
import struct
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
    NOT_A_FILE = "not_a_file"
    UNREADABLE = "unreadable"


class SkipError(Exception):
    """Raised for every file that cannot be scored; ``reason`` is machine-readable, ``detail`` human text."""

    def __init__(self, reason: SkipReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = SkipReason(reason)
        self.detail = detail

    def __reduce__(self):  # keep picklable across worker processes
        return (self.__class__, (self.reason, self.detail))


@dataclass(frozen=True)
class PixelExtent:
    """Where PixelData lies and how much it holds, found by walking element/item headers (no pixel
    bytes are read): a native element's length, or an encapsulated element's fragment count."""

    present: bool = False
    length: int | None = None  # native: the element's value length in bytes
    fragments: int | None = None  # encapsulated: items after the basic offset table
    truncated: bool = False  # the file ends before the element does (no sequence delimiter)


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
    bits_allocated: int = 8
    pixels: PixelExtent = PixelExtent()


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


#: Elements that any real DICOM image data set carries; a header with none of them is not DICOM.
_IDENTIFYING_KEYS = ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID", "SeriesInstanceUID")
#: Stop counting encapsulated fragments here (the count is only compared with NumberOfFrames).
_MAX_ITEMS_COUNTED = 1_000_000
_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def _read_header(path: Path) -> tuple[Dataset, PixelExtent]:
    """Header dataset (no pixel data) and the extent of its PixelData, or SkipError(NOT_DICOM).

    The file is opened only when it is a regular file (never a FIFO or device), and a header without
    any identifying element (e.g. a 128-byte preamble + "DICM" and nothing usable after it) is not DICOM.
    """
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise SkipError(SkipReason.NOT_DICOM, f"not a regular file: {path}")
    if not is_dicom(path):
        raise SkipError(SkipReason.NOT_DICOM, f"no DICOM header found in {path.name}")
    try:
        with path.open("rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            extent = _pixel_extent(fh, ds)
    except Exception as exc:  # broken header after a valid preamble
        raise SkipError(SkipReason.NOT_DICOM, f"unreadable DICOM header in {path.name}: {exc}") from exc
    if not any(key in ds for key in _IDENTIFYING_KEYS):
        raise SkipError(
            SkipReason.NOT_DICOM,
            f"{path.name} has a DICOM preamble but no usable data set after it "
            f"({len(ds)} element(s), none of {', '.join(_IDENTIFYING_KEYS)})",
        )
    return ds, extent


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) the data set was read with."""
    encoding = getattr(ds, "original_encoding", None)
    if encoding and encoding[0] is not None and encoding[1] is not None:
        return bool(encoding[0]), bool(encoding[1])
    ts = _transfer_syntax(ds)
    try:
        return bool(ts.is_implicit_VR), bool(ts.is_little_endian)
    except (AttributeError, ValueError):
        return True, True


def _pixel_extent(fh: Any, ds: Dataset) -> PixelExtent:
    """Walk the PixelData element header (and, when encapsulated, its item headers) at the file
    position where ``stop_before_pixels`` left *fh*, without reading pixel bytes."""
    start = fh.tell()
    file_size = os.fstat(fh.fileno()).st_size
    implicit, little = _encoding(ds)
    end = "<" if little else ">"
    head = fh.read(8)
    if len(head) < 8 or struct.unpack(end + "HH", head[:4]) != _PIXEL_DATA_TAG:
        return PixelExtent()
    if implicit:
        length, value_start = struct.unpack(end + "I", head[4:8])[0], start + 8
    elif head[4:6] in _LONG_VRS:
        extra = fh.read(4)
        if len(extra) < 4:
            return PixelExtent(present=True, length=0, truncated=True)
        length, value_start = struct.unpack(end + "I", extra)[0], start + 12
    else:
        length, value_start = struct.unpack(end + "H", head[6:8])[0], start + 8
    if length != 0xFFFFFFFF:
        return PixelExtent(present=True, length=length, truncated=value_start + length > file_size)
    return _count_fragments(fh, file_size)


def _count_fragments(fh: Any, file_size: int) -> PixelExtent:
    """Count the items of an encapsulated PixelData (the first is the basic offset table)."""
    items, delimited = 0, False
    while items < _MAX_ITEMS_COUNTED:
        head = fh.read(8)
        if len(head) < 8:
            break
        group, element, length = struct.unpack("<HHI", head)  # encapsulated data is always little endian
        if (group, element) == (0xFFFE, 0xE0DD):
            delimited = True
            break
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF or fh.tell() + length > file_size:
            break
        items += 1
        fh.seek(length, 1)
    if items >= _MAX_ITEMS_COUNTED:
        delimited = True  # stopped counting: at least this many fragments
    return PixelExtent(present=True, fragments=max(items - 1, 0), truncated=not delimited)


def _transfer_syntax(ds: Dataset) -> Any:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return uid


def info_from_dataset(
    ds: Dataset, path: Path, folder_name: str | None = None, pixels: PixelExtent | None = None
) -> DicomInfo:
    """Build :class:`DicomInfo` from an already-read header dataset (and its PixelData extent)."""
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
        bits_allocated=_int_or(ds.get("BitsAllocated"), 8),
        pixels=pixels if pixels is not None else PixelExtent(),
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
    ds, extent = _read_header(path)
    try:
        return info_from_dataset(ds, path, folder_name, extent)
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


#: Frame size (pixels) the default decode cap is sized for: larger than any echo machine's cine.
REFERENCE_FRAME_PIXELS = 1024 * 1024
_CAP_HEADROOM = 4


def default_decode_cap(num_frames: int = 16, frame_stride: int = 2) -> int:
    """Default decode memory cap in bytes: the frames the model samples (``num_frames * frame_stride``)
    at a 1024x1024 reference resolution, uint8 RGB, times 4 headroom (384 MiB for 16 x 2)."""
    frames = max(int(num_frames), 1) * max(int(frame_stride), 1)
    return frames * REFERENCE_FRAME_PIXELS * 3 * _CAP_HEADROOM


def decode_estimate(info: DicomInfo, n_frames: int) -> int:
    """Bytes that decoding *n_frames* frames of *info* allocates at peak: the RGB frames kept and their
    stacked copy, plus one decoded frame and its float32 working copy."""
    pixels = max(info.rows, 0) * max(info.columns, 0)
    sample_bytes = max(1, math.ceil(max(info.bits_allocated, 1) / 8))
    one_frame = pixels * max(info.samples_per_pixel, 1) * sample_bytes + pixels * 3 * 4
    return 2 * n_frames * pixels * 3 + one_frame


def _native_frame_bytes(info: DicomInfo) -> int:
    """Stored bytes of one native frame (YBR_FULL_422 keeps 2 samples per pixel)."""
    samples = max(info.samples_per_pixel, 1)
    if (info.photometric or "").upper() == "YBR_FULL_422" and samples == 3:
        samples = 2
    bits = info.rows * info.columns * samples * max(info.bits_allocated, 1)
    return math.ceil(bits / 8)


def check_decodable(info: DicomInfo, wanted: Sequence[int], max_bytes: int | None = None) -> None:
    """Refuse, before anything is allocated, headers whose sizes are absurd or disagree with the data.

    * BitsAllocated must be 8, 16 or 32 and SamplesPerPixel 1 or 3;
    * decoding the *wanted* frames must fit in *max_bytes* (default :func:`default_decode_cap`);
    * native data must hold NumberOfFrames x Rows x Columns x samples x bytes;
    * encapsulated data needs at least one fragment per frame (a complete file), or, in a truncated
      copy, fragments up to the last wanted frame (else DECODE_ERROR).
    Raises SkipError(INVALID_DIMENSIONS / EMPTY_PIXEL_ARRAY / DECODE_ERROR) naming what was absurd.
    """
    cap = default_decode_cap() if max_bytes is None else int(max_bytes)
    if info.bits_allocated not in (8, 16, 32):
        raise SkipError(
            SkipReason.INVALID_DIMENSIONS, f"BitsAllocated {info.bits_allocated} is not 8, 16 or 32"
        )
    if info.samples_per_pixel not in (1, 3):
        raise SkipError(
            SkipReason.INVALID_DIMENSIONS, f"SamplesPerPixel {info.samples_per_pixel} is not 1 or 3"
        )
    need = decode_estimate(info, len(set(wanted)))
    if need > cap:
        raise SkipError(
            SkipReason.INVALID_DIMENSIONS,
            f"decoding {len(set(wanted))} frame(s) of {info.rows}x{info.columns}x{info.samples_per_pixel} "
            f"at {info.bits_allocated} bits needs ~{need / 2**20:.0f} MiB, over the decode cap of "
            f"{cap / 2**20:.0f} MiB (inference.max_decode_mb)",
        )
    extent = info.pixels
    if not extent.present:
        raise SkipError(SkipReason.EMPTY_PIXEL_ARRAY, f"no pixel data in {info.path.name}")
    if extent.length is not None:
        expected = info.num_frames * _native_frame_bytes(info)
        if extent.length < expected:
            raise SkipError(
                SkipReason.INVALID_DIMENSIONS,
                f"header promises NumberOfFrames {info.num_frames} x {info.rows}x{info.columns}x"
                f"{info.samples_per_pixel} at {info.bits_allocated} bits = {expected} bytes, "
                f"but PixelData holds {extent.length} bytes",
            )
        return
    fragments = extent.fragments or 0
    if not extent.truncated and info.num_frames > fragments:
        raise SkipError(
            SkipReason.INVALID_DIMENSIONS,
            f"NumberOfFrames {info.num_frames} but the encapsulated PixelData holds {fragments} fragment(s)",
        )
    if extent.truncated and wanted and max(wanted) >= fragments:
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{info.transfer_syntax or 'encapsulated'} pixel data ends after {fragments} complete "
            f"fragment(s): frame {max(wanted)} is missing (truncated or corrupt file?)",
        )


def is_decoder_failure(exc: BaseException) -> bool:
    """True for errors a decoder raises on bad data: ordinary exceptions and Rust/pyo3 panics
    (``pyo3_runtime.PanicException`` derives from BaseException, not Exception)."""
    if isinstance(exc, Exception):
        return True
    return type(exc).__name__ == "PanicException" or type(exc).__module__ == "pyo3_runtime"


def read_frames(
    path: Path, indices: Sequence[int], info: DicomInfo | None = None, *, max_bytes: int | None = None
) -> np.ndarray:
    """Decode only frames *indices* of *path* as true-RGB uint8, shape (len(indices), H, W, 3).

    Duplicate or unsorted indices are allowed (each distinct frame is decoded once). Sizes are checked
    against the pixel data and the decode cap *max_bytes* first (:func:`check_decodable`). Raises
    SkipError(DECODE_ERROR) naming the transfer syntax and codec when decoding fails (a decoder panic
    included), or SkipError(EMPTY_PIXEL_ARRAY) when the file holds no pixel data.
    """
    path = Path(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, "no frames requested")
    ds, extent = _read_header(path)
    if info is None:
        info = info_from_dataset(ds, path, pixels=extent)
    n_frames = max(info.num_frames, 1)
    bad = [i for i in indices if i < 0 or i >= n_frames]
    if bad:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"frame index {bad[0]} outside 0..{n_frames - 1}")
    if info.rows < 1 or info.columns < 1:
        raise SkipError(SkipReason.INVALID_DIMENSIONS, f"image size {info.rows}x{info.columns}")
    wanted = sorted(set(indices))
    _check_decoder(ds)
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
