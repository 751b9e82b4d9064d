"""Header-only reading: content-based DICOM detection, :class:`DicomInfo`, and where PixelData lies.

Files are detected by content ("DICM" at offset 128, else a forced header parse), never by extension;
metadata is read with ``stop_before_pixels`` so deciding eligibility never decodes a cine, and the same
read walks the PixelData element (and item) headers so sizes can be checked before anything is allocated.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codecs import transfer_syntax
from .eligibility import SkipError, SkipReason
from .vendors import normalize_machine_type

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset


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


#: Longest header text kept (valid LO/UI/CS values are at most 64 characters; a corrupt length field
#: once made a Manufacturer of 5 MB, which broke reading results.csv back).
MAX_HEADER_TEXT = 256


def str_or_none(value: Any) -> str | None:
    """Stripped text of a header value, None when empty; cut to :data:`MAX_HEADER_TEXT` characters."""
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_HEADER_TEXT:
        text = text[:MAX_HEADER_TEXT] + "..."
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


def int_or(value: Any, default: int) -> int:
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


@dataclass
class DicomHeader:
    """One header read of a file: the data set without pixel data and where its PixelData lies.

    Read once per file and passed along (eligibility, then frame decoding) instead of re-reading.
    """

    path: Path
    ds: Dataset
    pixels: PixelExtent

    def info(self, folder_name: str | None = None) -> DicomInfo:
        """:class:`DicomInfo` of this header; malformed values become SkipError(OTHER_ERRORS)."""
        if folder_name is None:
            folder_name = self.path.parent.name or None
        try:
            return info_from_dataset(self.ds, self.path, folder_name, self.pixels)
        except SkipError:
            raise
        except Exception as exc:  # malformed values (e.g. non-numeric Rows)
            raise SkipError(
                SkipReason.OTHER_ERRORS, f"cannot interpret DICOM header of {self.path.name}: {exc}"
            ) from exc


def read_header(path: Path) -> DicomHeader:
    """Header data set (no pixel data) and the extent of its PixelData, or SkipError(NOT_DICOM).

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
    return DicomHeader(path, ds, extent)


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) the data set was read with."""
    encoding = getattr(ds, "original_encoding", None)
    if encoding and encoding[0] is not None and encoding[1] is not None:
        return bool(encoding[0]), bool(encoding[1])
    ts = transfer_syntax(ds)
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


def info_from_dataset(
    ds: Dataset, path: Path, folder_name: str | None = None, pixels: PixelExtent | None = None
) -> DicomInfo:
    """Build :class:`DicomInfo` from an already-read header dataset (and its PixelData extent)."""
    model = str_or_none(ds.get("ManufacturerModelName"))
    ts = transfer_syntax(ds)
    ts_name = str_or_none(ts.name) if ts is not None else None  # unknown UIDs: the UID itself
    return DicomInfo(
        path=Path(path),
        modality=str_or_none(ds.get("Modality")),
        sop_class_uid=str_or_none(ds.get("SOPClassUID")),
        manufacturer=str_or_none(ds.get("Manufacturer")),
        model=model,
        machine_type=normalize_machine_type(model, folder_name),
        patient_id=str_or_none(ds.get("PatientID")),
        study_uid=str_or_none(ds.get("StudyInstanceUID")),
        sop_uid=str_or_none(ds.get("SOPInstanceUID")),
        num_frames=max(int_or(ds.get("NumberOfFrames"), 1), 0),
        fps=frame_rate(ds),
        rows=int_or(ds.get("Rows"), 0),
        columns=int_or(ds.get("Columns"), 0),
        photometric=str_or_none(ds.get("PhotometricInterpretation")),
        transfer_syntax=ts_name,
        samples_per_pixel=int_or(ds.get("SamplesPerPixel"), 1),
        bits_stored=int_or(ds.get("BitsStored"), 0) or None,
        us_regions=ultrasound_regions(ds),
        bits_allocated=int_or(ds.get("BitsAllocated"), 8),
        pixels=pixels if pixels is not None else PixelExtent(),
    )


def ultrasound_regions(ds: Dataset) -> tuple[tuple[int, int, int, int], ...]:
    """Bounding boxes of the 2D regions in SequenceOfUltrasoundRegions that fit inside the image.

    Regions are sanity-checked against Rows/Columns: some files (e.g. pydicom's SonoSite sample)
    carry coordinates of a larger acquisition frame, which must not be used.
    """
    rows, cols = int_or(ds.get("Rows"), 0), int_or(ds.get("Columns"), 0)
    boxes = []
    try:
        regions = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    except Exception:
        return ()
    for region in regions:
        if int_or(region.get("RegionSpatialFormat"), 0) != 1:  # 1 = 2D tissue/flow image
            continue
        box = tuple(
            int_or(region.get(k), -1)
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
    """Read header metadata without touching pixel data (folder: the file's parent by default).

    Raises SkipError(NOT_DICOM), or SkipError(OTHER_ERRORS) for malformed header values.
    """
    return read_header(path).info(folder_name)
