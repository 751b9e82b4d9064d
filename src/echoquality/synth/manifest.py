"""The synthetic tree's manifest: one :class:`SynthRecord` per generated file, as CSV."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MANIFEST_NAME = "synth_manifest.csv"


@dataclass
class SynthRecord:
    """One generated file, as written to ``synth_manifest.csv``."""

    relative_path: str
    folder: str
    patient_id: str
    machine_type: str
    label: int | None  # 1 good, 0 poor, None for files that should be skipped
    degradation: str  # "none" for good clips, "" for awkward files
    photometric: str
    transfer_syntax: str  # UID name, "" when the file has none
    num_frames: int
    fps: float | None
    expected_skip_reason: str  # "" when the file should be scored


MANIFEST_COLUMNS = tuple(f.name for f in fields(SynthRecord))


def write_manifest(path: Path, records: list[SynthRecord]) -> None:
    """Write records as CSV (columns :data:`MANIFEST_COLUMNS`)."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for rec in records:
            row = asdict(rec)
            row["label"] = "" if rec.label is None else rec.label
            row["fps"] = "" if rec.fps is None else f"{rec.fps:g}"
            writer.writerow(row)


def read_manifest(path: Path) -> list[SynthRecord]:
    """Read ``synth_manifest.csv`` back into records."""
    out: list[SynthRecord] = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            out.append(
                SynthRecord(
                    relative_path=row["relative_path"],
                    folder=row["folder"],
                    patient_id=row["patient_id"],
                    machine_type=row["machine_type"],
                    label=int(row["label"]) if row["label"] != "" else None,
                    degradation=row["degradation"],
                    photometric=row["photometric"],
                    transfer_syntax=row["transfer_syntax"],
                    num_frames=int(row["num_frames"]),
                    fps=float(row["fps"]) if row["fps"] != "" else None,
                    expected_skip_reason=row["expected_skip_reason"],
                )
            )
    return out
