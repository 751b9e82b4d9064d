"""Awkward files in the synthetic tree: files that must be skipped, plus one raw clip that must be scored.

Each kind of awkward file has one small writer taking an :class:`_AwkwardContext` and returning its
manifest record; :data:`AWKWARD_WRITERS` lists them in the order they are written. The order matters:
all writers draw from the context's one seeded generator, so reordering them changes the bytes written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .dicom_writer import CT_IMAGE_SOP, _base_dataset, _ts_name, _uid, write_clip
from .manifest import SynthRecord
from .render import ClipSpec, render_clip

if TYPE_CHECKING:
    from . import Machine


@dataclass
class _AwkwardContext:
    """What every awkward-file writer needs: where to write, the seed, the folders and one shared rng."""

    out_dir: Path
    seed: int
    folders: list[tuple[str, str, Machine]]
    height: int
    width: int
    rng: np.random.Generator

    def where(self, k: int) -> tuple[str, str, Machine]:
        """The (folder, patient id, machine) of the *k*-th awkward file (cycling through the folders)."""
        return self.folders[k % len(self.folders)]

    def clip(self, num_frames: int, fps: float, colour: bool, label_text: str) -> np.ndarray:
        spec = ClipSpec(
            self.height, self.width, num_frames, fps, colour_overlays=colour, label_text=label_text
        )
        return render_clip(spec, self.rng)

    def write_cine(
        self, k: int, uid: str, num_frames: int, fps: float, colour: bool, **options: object
    ) -> Path:
        """Render and write a clip as file *uid* of the *k*-th awkward folder, with that folder's patient
        and machine, at *fps*; *options* are :func:`write_clip`'s (photometric, transfer syntax, ...)."""
        folder, pid, m = self.where(k)
        frames = self.clip(num_frames, fps, colour, m.model)
        return write_clip(
            self.out_dir / folder / uid,
            frames,
            fps=fps,
            patient_id=pid,
            sop_uid=uid,
            manufacturer=m.manufacturer,
            model=m.model,
            **options,  # type: ignore[arg-type]
        )


def _skipped(
    folder: str,
    pid: str,
    machine_type: str,
    name: str,
    photometric: str,
    ts: str,
    frames: int,
    fps: float | None,
    reason: str,
) -> SynthRecord:
    """The record of a file that should be skipped for *reason* (no label, no degradation)."""
    return SynthRecord(
        f"{folder}/{name}", folder, pid, machine_type, None, "", photometric, ts, frames, fps, reason
    )


def _write_still(ctx: _AwkwardContext, k: int, photometric: str) -> SynthRecord:
    """A single-frame still (the origin misread RGB stills as videos)."""
    folder, pid, m = ctx.where(k)
    uid = _uid(ctx.seed, "still", k)
    ctx.write_cine(k, uid, 1, 30.0, photometric == "RGB", photometric=photometric, multiframe=False)
    ts = _ts_name("ExplicitVRLittleEndian")
    return _skipped(folder, pid, m.machine_type, uid, photometric, ts, 1, None, "single_frame")


def _write_ct_slice(ctx: _AwkwardContext) -> SynthRecord:
    """A CT slice in an echo folder (happens in real exports)."""
    folder, pid, _ = ctx.where(2)
    uid = _uid(ctx.seed, "ct")
    ds = _base_dataset(CT_IMAGE_SOP, uid, "ExplicitVRLittleEndian")
    ds.PatientID, ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = pid, "CT", "SIEMENS", "Biograph16"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(ctx.seed, "ct-study"), _uid(ctx.seed, "ct-series")
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = ctx.rng.integers(0, 4096, (64, 64), dtype=np.uint16).tobytes()
    (ctx.out_dir / folder).mkdir(parents=True, exist_ok=True)
    ds.save_as(ctx.out_dir / folder / uid, enforce_file_format=True)
    ts = _ts_name("ExplicitVRLittleEndian")
    return _skipped(folder, pid, "biograph16", uid, "MONOCHROME2", ts, 1, None, "not_ultrasound")


def _write_non_dicom(ctx: _AwkwardContext) -> SynthRecord:
    """A plain-text export log (not DICOM)."""
    folder, pid, _ = ctx.where(3)
    (ctx.out_dir / folder).mkdir(parents=True, exist_ok=True)
    (ctx.out_dir / folder / "export_log.txt").write_text("Exported by SynthEcho 1.0\nstudy complete\n")
    return _skipped(folder, pid, folder.split("-")[0], "export_log.txt", "", "", 0, None, "not_dicom")


def _write_truncated_jpeg(ctx: _AwkwardContext) -> SynthRecord:
    """A JPEG cine truncated at 35% (the copy stopped half-way through the pixel data)."""
    folder, pid, m = ctx.where(4)
    uid = _uid(ctx.seed, "truncated")
    path = ctx.write_cine(
        4, uid, 40, 30.0, True, photometric="YBR_FULL_422", transfer_syntax="JPEGBaseline8Bit"
    )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.35)])
    ts = _ts_name("JPEGBaseline8Bit")
    return _skipped(folder, pid, m.machine_type, uid, "YBR_FULL_422", ts, 40, 30.0, "decode_error")


def _write_no_pixel_data(ctx: _AwkwardContext) -> SynthRecord:
    """A multi-frame header (NumberOfFrames 24) without pixel data."""
    import pydicom

    folder, pid, m = ctx.where(5)
    uid = _uid(ctx.seed, "nopixels")
    path = ctx.write_cine(5, uid, 2, 30.0, True, photometric="RGB")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.NumberOfFrames = 24
    ds.save_as(path, enforce_file_format=True)
    ts = _ts_name("ExplicitVRLittleEndian")
    return _skipped(folder, pid, m.machine_type, uid, "RGB", ts, 24, 30.0, "empty_pixel_array")


def _write_raw_without_preamble(ctx: _AwkwardContext) -> SynthRecord:
    """A raw dataset without preamble/file meta (Implicit VR LE): a good clip that must still be scored."""
    import pydicom

    folder, pid, m = ctx.where(6)
    uid = _uid(ctx.seed, "raw")
    path = ctx.write_cine(
        6, uid, 24, 25.0, False, photometric="MONOCHROME2", transfer_syntax="ImplicitVRLittleEndian"
    )
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return SynthRecord(
        f"{folder}/{uid}", folder, pid, m.machine_type, 1, "none", "MONOCHROME2", "", 24, 25.0, ""
    )


# The awkward files, in writing order (they share one rng: keep the order for byte-identical output).
AWKWARD_WRITERS: tuple[Callable[[_AwkwardContext], SynthRecord], ...] = (
    partial(_write_still, k=0, photometric="MONOCHROME2"),
    partial(_write_still, k=1, photometric="RGB"),
    _write_ct_slice,
    _write_non_dicom,
    _write_truncated_jpeg,
    _write_no_pixel_data,
    _write_raw_without_preamble,
)


def write_awkward(
    out_dir: Path, seed: int, folders: list[tuple[str, str, Machine]], height: int, width: int
) -> list[SynthRecord]:
    """Write every file of :data:`AWKWARD_WRITERS` under *out_dir*; return their records in order."""
    ctx = _AwkwardContext(out_dir, seed, folders, height, width, np.random.default_rng([seed, 99_999]))
    return [write(ctx) for write in AWKWARD_WRITERS]
