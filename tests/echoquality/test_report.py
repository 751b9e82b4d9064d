"""`echoquality report`: one self-contained HTML file (inline styles, embedded previews, no external
reference), the run's numbers, and no patient identifier by default."""

from __future__ import annotations

import base64
import csv
import io
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("jinja2", reason="the report needs Jinja2")
sys.path.insert(0, str(Path(__file__).parent))
from _review_fixture import ReviewRun, build_run  # noqa: E402

from echoquality.cli import app as cli_app  # noqa: E402
from echoquality.review.report import histogram_svg  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ReviewRun:
    return build_run(tmp_path_factory.getbasetemp() / "review_run")


@pytest.fixture(scope="module")
def report(run: ReviewRun, tmp_path_factory: pytest.TempPathFactory) -> str:
    html = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    res = CliRunner().invoke(
        cli_app, ["report", "--results", str(run.out), "--html", str(html), "--workers", "0", "--top", "3"]
    )
    assert res.exit_code == 0, res.output
    assert [p.name for p in html.parent.iterdir()] == ["report.html"]  # one file, nothing beside it
    return html.read_text()


def test_report_is_self_contained(report: str) -> None:
    assert "<link" not in report and "<script" not in report
    refs = re.findall(r'(?:src|href)="([^"]*)"', report)
    assert refs and all(r.startswith("data:image/webp;base64,") for r in refs), refs[:3]
    from PIL import Image

    first = Image.open(io.BytesIO(base64.b64decode(refs[0].split(",", 1)[1])))
    assert first.format == "WEBP" and getattr(first, "n_frames", 1) > 1  # animated preview
    assert "<style>" in report and "<svg" in report


def test_report_numbers(report: str, run: ReviewRun) -> None:
    with (run.out / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    n_pass = sum(r["status"] == "PASS" for r in rows)
    assert f"<b>{len(rows)}</b>files" in report and f'<b class="pass">{n_pass}</b>PASS' in report
    for reason in {r["skip_reason"] for r in rows if r["skip_reason"]}:
        assert f"<td>{reason}</td>" in report
    for section in ('id="worst"', 'id="uncertain"', "By machine", "By folder", "threshold"):
        assert section in report
    assert len(re.findall(r'<div class="clip">', report)) == 6  # --top 3, twice


def test_report_has_no_patient_identifier(report: str, run: ReviewRun) -> None:
    for needle in (*run.identifiers, *run.folders):
        assert needle not in report


def test_report_without_results_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli_app, ["report", "--results", str(tmp_path), "--html", str(tmp_path / "r.html")]
    )
    assert res.exit_code == 2 and "no results.csv" in res.output
    assert not (tmp_path / "r.html").exists()


def test_histogram_counts_and_threshold_line() -> None:
    svg = histogram_svg([0.0, 0.01, 0.5, 0.99, 1.0], 0.3)
    assert svg.count("<rect") == 20
    assert "0.00-0.05: 2</title>" in svg and "0.95-1.00: 2</title>" in svg and "threshold 0.30" in svg
