"""`echoquality prepare-data --labels labels.csv --data-dir RAW` without an inference run (issue 14):
a training set straight from labelled clips, so a new user needs no reference weights to start."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _results_fixture as fx  # noqa: E402

from echoquality.cli import app  # noqa: E402

runner = CliRunner()


def test_labels_alone_build_a_training_set(tmp_path):
    data, _ = fx.build(tmp_path)  # clips on disk; the inference results are not used
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nepiq7c-P1/a1,1\nepiq7c-P1/a3,good\nvivide95-P2/b4,0\nepiq7c-P1/a4,\n")
    out = tmp_path / "td"
    args = ["prepare-data", "--labels", str(labels), "--data-dir", str(data), "--output", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    with (out / "echo_annotations.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {Path(row["source_path"]).relative_to(data.resolve()).as_posix(): row for row in rows}
    assert {k: v["quality_score"] for k, v in got.items()} == {
        "epiq7c-P1/a1": "1",
        "epiq7c-P1/a3": "1",
        "vivide95-P2/b4": "0",
    }
    assert {v["label_source"] for v in got.values()} == {"human"}
    for row in rows:
        assert (out / row["video_path"]).read_bytes() == Path(row["source_path"]).read_bytes()

    again = runner.invoke(app, args)  # an existing set: a usage error with the way out
    assert again.exit_code == 2 and "--force" in again.output


def test_neither_results_nor_labels_is_a_usage_error(tmp_path):
    r = runner.invoke(app, ["prepare-data", "--results", str(tmp_path / "none"), "-o", str(tmp_path / "td")])
    assert r.exit_code == 2
