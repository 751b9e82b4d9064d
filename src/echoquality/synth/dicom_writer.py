"""Writing synthetic cines as real ultrasound DICOM files (file meta, vendor tags, encodings)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

US_MULTIFRAME_SOP = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.6.1"
CT_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.2"


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _base_dataset(sop_class: str, sop_uid: str, transfer_syntax: str):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(getattr(pydicom.uid, transfer_syntax))
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20250101"
    ds.ContentDate = "20250101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    return ds


def write_clip(
    path: Path,
    frames_rgb: np.ndarray,
    *,
    photometric: str = "RGB",
    transfer_syntax: str = "ExplicitVRLittleEndian",
    fps: float | None = 30.0,
    patient_id: str = "SYN0000",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    manufacturer: str = "Philips Medical Systems",
    model: str = "EPIQ 7C",
    multiframe: bool = True,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as an ultrasound DICOM.

    *photometric*: MONOCHROME2 (stored as grey), RGB, YBR_FULL (native) or YBR_FULL_422 (requires
    ``transfer_syntax="JPEGBaseline8Bit"``: each frame is JPEG-encoded with Pillow, quality 90, 4:2:2).
    *transfer_syntax*: a pydicom.uid keyword: ExplicitVRLittleEndian, ImplicitVRLittleEndian,
    JPEGBaseline8Bit or RLELossless. ``multiframe=False`` writes an Ultrasound Image Storage still
    from the first frame (no NumberOfFrames).
    """
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space

    frames_rgb = np.asarray(frames_rgb, np.uint8)
    if not multiframe:
        frames_rgb = frames_rgb[:1]
    t, h, w = frames_rgb.shape[:3]
    sop_uid = sop_uid or _uid("sop", patient_id, frames_rgb.shape, photometric, transfer_syntax)
    ds = _base_dataset(US_MULTIFRAME_SOP if multiframe else US_IMAGE_SOP, sop_uid, transfer_syntax)
    ds.PatientName = f"SYNTH^{patient_id}"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid or _uid("study", patient_id)
    ds.SeriesInstanceUID = series_uid or _uid("series", patient_id)
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY"]
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if multiframe:
        ds.NumberOfFrames = t
        if fps:
            ds.FrameTime = f"{1000.0 / fps:.4f}"
            ds.CineRate = int(round(fps))
            ds.FrameIncrementPointer = 0x00181063
    grey = photometric.startswith("MONOCHROME")
    ds.SamplesPerPixel = 1 if grey else 3
    ds.PhotometricInterpretation = photometric
    if not grey:
        ds.PlanarConfiguration = 0
    if grey:
        pixels = frames_rgb.mean(axis=3).round().astype(np.uint8)
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
    elif photometric == "YBR_FULL" and transfer_syntax != "JPEGBaseline8Bit":
        pixels = convert_color_space(frames_rgb, "RGB", "YBR_FULL")
    else:
        pixels = frames_rgb
    if transfer_syntax == "JPEGBaseline8Bit":
        if photometric != "YBR_FULL_422":
            raise ValueError("JPEG Baseline clips are written as YBR_FULL_422")
        ds.PixelData = encapsulate([_jpeg_bytes(f) for f in frames_rgb])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        raw = pixels if multiframe else pixels[0]
        ds.PixelData = np.ascontiguousarray(raw).tobytes()
        ds["PixelData"].VR = "OB"
        if transfer_syntax == "RLELossless":
            from pydicom.uid import ExplicitVRLittleEndian, RLELossless

            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.compress(RLELossless, generate_instance_uid=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _jpeg_bytes(frame_rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame_rgb, "RGB").save(buf, format="JPEG", quality=90, subsampling=1)  # 1 = 4:2:2
    return buf.getvalue()


def _ts_name(keyword: str) -> str:
    import pydicom

    return getattr(pydicom.uid, keyword).name
