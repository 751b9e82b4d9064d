"""Why a file is not scored: the skip reasons, and the checks made before any pixel is decoded.

``SkipReason`` values are the keys written to the result files (see ``echoquality.results_schema``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .header import DicomInfo

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
