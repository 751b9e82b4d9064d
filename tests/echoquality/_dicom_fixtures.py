"""A DICOM fixture shared by the decoding and fuzz tests."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.encaps import encapsulate

from echoquality.synth import US_MULTIFRAME_SOP


def panicking_rle_cine(path: Path) -> Path:
    """A 2-frame US cine whose first RLE fragment makes the Rust RLE decoder panic (4 flipped bytes of
    pydicom's MR_small_RLE.dcm, found by the fuzz harness)."""
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    good = next(generate_frames(ds.PixelData, number_of_frames=1))
    bad = bytearray(good)
    for pos, value in ((1742, 214), (3671, 252), (4728, 140), (5388, 182)):
        bad[pos] = value
    ds.PixelData = encapsulate([bytes(bad), good])
    ds.NumberOfFrames = 2
    ds.Modality = "US"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME_SOP
    ds.save_as(path)
    return path
