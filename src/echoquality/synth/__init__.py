"""Synthetic echocardiography DICOM data with known quality labels.

Renders fan-shaped B-mode cines (speckle, a beating chamber-like structure, burned-in text and an ECG
trace outside the sector) and writes them as real DICOM files (Ultrasound Multi-frame Image Storage,
proper file meta) with vendor tags, several photometric interpretations and transfer syntaxes. Half of
the clips are degraded (strong noise, very low gain, shadowing/dropout, heavy blur, truncated sector)
and labelled poor (0); the rest are good (1). Awkward files (stills, CT, non-DICOM, truncated, no pixel
data, raw dataset without preamble) exercise the skip reasons.

Everything is seeded: the same seed gives byte-identical files. Layout::

    <out>/<machine>-<PatientID>/<SOPInstanceUID>   (most files have no extension)
    <out>/synth_manifest.csv

Modules: :mod:`.render` (the cines), :mod:`.dicom_writer` (DICOM files), :mod:`.awkward` (files to
skip), :mod:`.manifest` (the CSV); this package module ties them together in :func:`generate_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dicom import normalize_machine_type
from .awkward import write_awkward
from .dicom_writer import CT_IMAGE_SOP, US_IMAGE_SOP, US_MULTIFRAME_SOP, _ts_name, _uid, write_clip
from .manifest import MANIFEST_COLUMNS, MANIFEST_NAME, SynthRecord, read_manifest, write_manifest
from .render import ClipSpec, render_clip

__all__ = [
    "CT_IMAGE_SOP",
    "DEGRADATIONS",
    "ENCODINGS",
    "FPS_CHOICES",
    "FRAME_RANGE",
    "INFO_NAME",
    "MACHINES",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "SIZES",
    "US_IMAGE_SOP",
    "US_MULTIFRAME_SOP",
    "ClipSpec",
    "Machine",
    "SynthRecord",
    "generate_dataset",
    "read_manifest",
    "render_clip",
    "write_clip",
    "write_manifest",
]

INFO_NAME = "synth_info.json"  # generator parameters and library versions

SIZES: dict[str, tuple[int, int]] = {"small": (200, 260), "medium": (480, 640)}
FRAME_RANGE: dict[str, tuple[int, int]] = {"small": (12, 40), "medium": (40, 120)}
FPS_CHOICES = (20.0, 25.0, 30.0, 40.0, 50.0, 60.0)
DEGRADATIONS = ("noise", "low_gain", "shadowing", "blur", "truncated_sector")

# (photometric, transfer syntax keyword) cycle; JPEG Baseline YBR_FULL_422 is the most common in real echo.
ENCODINGS: tuple[tuple[str, str], ...] = (
    ("YBR_FULL_422", "JPEGBaseline8Bit"),
    ("RGB", "ExplicitVRLittleEndian"),
    ("MONOCHROME2", "ExplicitVRLittleEndian"),
    ("YBR_FULL_422", "JPEGBaseline8Bit"),
    ("RGB", "RLELossless"),
    ("YBR_FULL", "ExplicitVRLittleEndian"),
)


@dataclass(frozen=True)
class Machine:
    manufacturer: str
    model: str

    @property
    def machine_type(self) -> str:
        return normalize_machine_type(self.model, None)


MACHINES: tuple[Machine, ...] = (
    Machine("Philips Medical Systems", "EPIQ 7C"),
    Machine("Philips Medical Systems", "Affiniti 70G"),
    Machine("GE Vingmed Ultrasound", "Vivid E95"),
    Machine("Philips Medical Systems", "Affiniti 50G"),
    Machine("GE Vingmed Ultrasound", "Vivid S60"),
    Machine("GE Vingmed Ultrasound", "Vivid S70"),
)


def generate_dataset(
    out_dir: Path,
    seed: int = 0,
    folders: int = 6,
    clips_per_folder: int = 4,
    size: str = "small",
    include_awkward: bool = True,
) -> list[SynthRecord]:
    """Write a synthetic study tree under *out_dir* and its manifest; return the records.

    Folder ``i`` is ``<machine>-SYN<i+1:04d>``; within each folder good and poor clips are balanced
    (shuffled order), encodings cycle through :data:`ENCODINGS`, degradations through
    :data:`DEGRADATIONS`. Existing files with the same names are overwritten, others are left alone.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if folders < 1 or clips_per_folder < 0:
        raise ValueError("folders must be >= 1 and clips_per_folder >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = SIZES[size]
    lo, hi = FRAME_RANGE[size]
    records: list[SynthRecord] = []
    clip_no = poor_no = 0
    folder_names: list[tuple[str, str, Machine]] = []
    for fi in range(folders):
        machine = MACHINES[fi % len(MACHINES)]
        patient_id = f"SYN{fi + 1:04d}"
        folder = f"{machine.machine_type}-{patient_id}"
        folder_names.append((folder, patient_id, machine))
        study_uid, series_uid = _uid(seed, "study", folder), _uid(seed, "series", folder)
        frng = np.random.default_rng([seed, fi, 0])
        labels = frng.permutation([1 - (k + fi) % 2 for k in range(clips_per_folder)])
        for ci in range(clips_per_folder):
            rng = np.random.default_rng([seed, fi, ci + 1])
            label = int(labels[ci])
            degradation = "none"
            if label == 0:
                degradation = DEGRADATIONS[poor_no % len(DEGRADATIONS)]
                poor_no += 1
            photometric, ts = ENCODINGS[clip_no % len(ENCODINGS)]
            clip_no += 1
            spec = ClipSpec(
                height=height,
                width=width,
                num_frames=int(rng.integers(lo, hi + 1)),
                fps=float(rng.choice(FPS_CHOICES)),
                degradation=degradation,
                heart_rate=float(rng.uniform(55, 100)),
                gain=float(rng.uniform(0.9, 1.15)),
                colour_overlays=photometric != "MONOCHROME2",
                label_text=machine.model,
            )
            frames = render_clip(spec, rng)
            sop_uid = _uid(seed, "sop", folder, ci)
            name = sop_uid + (".dcm" if (fi + ci) % 4 == 3 else "")
            write_clip(
                out_dir / folder / name,
                frames,
                photometric=photometric,
                transfer_syntax=ts,
                fps=spec.fps,
                patient_id=patient_id,
                study_uid=study_uid,
                series_uid=series_uid,
                sop_uid=sop_uid,
                manufacturer=machine.manufacturer,
                model=machine.model,
            )
            records.append(
                SynthRecord(
                    relative_path=f"{folder}/{name}",
                    folder=folder,
                    patient_id=patient_id,
                    machine_type=machine.machine_type,
                    label=label,
                    degradation=degradation,
                    photometric=photometric,
                    transfer_syntax=_ts_name(ts),
                    num_frames=spec.num_frames,
                    fps=spec.fps,
                    expected_skip_reason="",
                )
            )
    if include_awkward:
        records.extend(write_awkward(out_dir, seed, folder_names, height, width))
    write_manifest(out_dir / MANIFEST_NAME, records)
    _write_info(out_dir / INFO_NAME, seed, folders, clips_per_folder, size, include_awkward, len(records))
    return records


def _write_info(
    path: Path, seed: int, folders: int, clips: int, size: str, awkward: bool, n_files: int
) -> None:
    """Record how the tree was made (no timestamps, so reruns stay byte-identical)."""
    import importlib.metadata
    import json

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    info = {
        "generator": "echoquality.synth.generate_dataset",
        "parameters": {
            "seed": seed,
            "folders": folders,
            "clips_per_folder": clips,
            "size": size,
            "include_awkward": awkward,
        },
        "files": n_files,
        "versions": {
            d: version(d) for d in ("radiology-qc", "pydicom", "numpy", "pillow", "opencv-python-headless")
        },
    }
    path.write_text(json.dumps(info, indent=2) + "\n")
