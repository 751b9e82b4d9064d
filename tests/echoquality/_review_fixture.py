"""One small synthetic inference run shared by the review/report tests (built once per session).

3 folders x 2 clips (+ the awkward files) of the synthetic generator, every scorable file given a
birth date and an accession number so that all four patient fields can be searched for, scored by
``echoquality infer`` with random tiny weights, threshold at the median score (PASS and FAIL both appear).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner


@dataclass(frozen=True)
class ReviewRun:
    raw: Path  # data folder
    out: Path  # inference output
    weights: Path
    identifiers: tuple[str, ...]  # every patient field value written in the files
    folders: tuple[str, ...]


def _add_patient_fields(path: Path, n: int) -> list[str]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:  # the raw preamble-less clip: leave it as it is
        return []
    ds.PatientBirthDate = f"1960{(n % 12) + 1:02d}{(n % 27) + 1:02d}"
    ds.AccessionNumber = f"ACC{7000 + n}"
    ds.save_as(path)
    return [str(ds.PatientName), str(ds.PatientID), ds.PatientBirthDate, ds.AccessionNumber]


@functools.cache
def build_run(base: Path) -> ReviewRun:
    from echoquality.cli import app
    from echoquality.model.weights import save_random_weights
    from echoquality.synth import generate_dataset

    raw, out = base / "raw", base / "out"
    records = generate_dataset(raw, seed=5, folders=3, clips_per_folder=2, size="small", include_awkward=True)
    idents: set[str] = set()
    for n, rec in enumerate(r for r in records if not r.expected_skip_reason):
        idents.update(_add_patient_fields(raw / rec.relative_path, n))
    idents.update(r.patient_id for r in records)
    weights = save_random_weights(base / "tiny.pt", "tiny", seed=0)
    args = ["infer", "--quiet", "--device", "cpu", "--data-dir", str(raw), "--output", str(out)]
    args += ["--weights", str(weights), "--workers", "0", "--no-plots"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    # random weights give scores in a narrow band: re-label (no re-scoring) at the median so that
    # both PASS and FAIL appear
    with (out / "results.csv").open(newline="") as fh:
        scores = sorted(float(r["score"]) for r in csv.DictReader(fh) if r["score"])
    median = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    res = CliRunner().invoke(app, [*args, "--threshold", repr(median)])
    assert res.exit_code == 0, res.output
    folders = tuple(sorted({r.folder for r in records}))
    return ReviewRun(raw, out, weights, tuple(sorted(i for i in idents if i)), folders)
