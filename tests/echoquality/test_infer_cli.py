"""`echoquality infer` on a tree where nothing can be scored (issue 14 item 7): it says so, says why,
and exits 1 instead of reporting a 0% pass rate as success."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.model import build_model

runner = CliRunner()


def test_no_scorable_file_is_said_and_exits_1(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(build_model("tiny").state_dict(), weights)
    raw = tmp_path / "raw" / "study1"
    raw.mkdir(parents=True)
    (raw / "notes.txt").write_text("not an echo")
    (raw / "report.pdf").write_bytes(b"%PDF-1.4 not a DICOM file")
    args = ["infer", "--quiet", "--device", "cpu", "--data-dir", str(tmp_path / "raw")]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), "--weights", str(weights)])
    assert res.exit_code == 1, res.output
    flat = " ".join(res.output.split())
    assert "nothing was scorable" in flat and "none of the 2 file(s)" in flat and "not_dicom 2" in flat
    assert (tmp_path / "out" / "results.csv").is_file()  # the per-file reasons are still written
