"""True RGB from any photometric interpretation: a colour plan per file, with a small vendor quirk table.

pydicom 3 already converts YBR_FULL/YBR_FULL_422 to RGB (and JPEG 2000 undoes RCT/ICT), so no second YBR
conversion happens here; MONOCHROME1 is inverted, PALETTE COLOR goes through its LUT, >8-bit data is
scaled to 8 bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .eligibility import SkipError, SkipReason
from .header import int_or

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset


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
class ColourPlan:
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


def _palette_table(ds: Dataset, scale: float | None = None) -> np.ndarray:
    """Full PALETTE COLOR lookup table as (N, 3) uint8, scaled from 16-bit entries when needed."""
    from pydicom.pixels import apply_color_lut

    bits = int_or(ds.get("BitsStored"), 8) or 8
    n = 2 ** min(bits, 16)
    table = apply_color_lut(np.arange(n, dtype=np.uint16 if n > 256 else np.uint8), ds)
    table = np.asarray(table).reshape(n, 3)
    if table.dtype != np.uint8:
        # Entries are nominally 16-bit; some writers store 8-bit values in 16-bit words.
        if scale is None:
            scale = 257.0 if table.max() > 255 else 1.0
        table = np.clip(np.rint(table / scale), 0, 255).astype(np.uint8)
    return table


@dataclass(frozen=True)
class ColourQuirk:
    """A vendor's deviation from the standard colour encoding, matched on Manufacturer and model.

    Add a row to :data:`COLOUR_QUIRKS` (with a test using such a file) when a machine's cines decode
    with wrong colours; this is the one place for vendor colour rules.
    """

    manufacturer: str  # case-insensitive substring of Manufacturer
    model: str = ""  # case-insensitive substring of ManufacturerModelName ("" matches any model)
    photometric: str | None = None  # decode as this PhotometricInterpretation instead of the tag's
    palette_scale: float | None = None  # divide 16-bit LUT entries by this (None: automatic)
    note: str = ""

    def matches(self, manufacturer: str, model: str) -> bool:
        return self.manufacturer.lower() in manufacturer.lower() and self.model.lower() in model.lower()


#: Known vendor colour quirks (none needed so far: every vendor file in the test corpus decodes
#: correctly with the standard rules above).
COLOUR_QUIRKS: tuple[ColourQuirk, ...] = ()


def _quirk_for(ds: Dataset, quirks: tuple[ColourQuirk, ...]) -> ColourQuirk | None:
    manufacturer = str(ds.get("Manufacturer", "") or "")
    model = str(ds.get("ManufacturerModelName", "") or "")
    return next((q for q in quirks if q.matches(manufacturer, model)), None)


def colour_plan(ds: Dataset, quirks: tuple[ColourQuirk, ...] = COLOUR_QUIRKS) -> ColourPlan:
    """Colour handling for the dataset's PhotometricInterpretation (and its vendor's quirk, if any)."""
    quirk = _quirk_for(ds, quirks)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if quirk is not None and quirk.photometric:
        photometric = quirk.photometric.upper()
    bits = int_or(ds.get("BitsStored"), 0) or None
    signed = int_or(ds.get("PixelRepresentation"), 0) == 1
    palette = None
    if photometric == "PALETTE COLOR":
        try:
            palette = _palette_table(ds, quirk.palette_scale if quirk is not None else None)
        except Exception as exc:
            raise SkipError(SkipReason.DECODE_ERROR, f"PALETTE COLOR lookup table unusable: {exc}") from exc
    return ColourPlan(photometric=photometric, bits=bits, signed=signed, palette=palette)
