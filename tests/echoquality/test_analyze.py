"""`echoquality analyze` numbers on a hand-built results fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _results_fixture as fx  # noqa: E402

from echoquality.cli import app  # noqa: E402
from echoquality.evaluation.analyze import summarise  # noqa: E402
from echoquality.results_table import load_results, read_results_csv, read_summary_json  # noqa: E402
from echoquality.training.selection import SelectionCriteria  # noqa: E402


def _check(a) -> None:
    o = a.overall
    assert (o.files, o.scored, o.skipped, o.pass_count, o.fail_count) == (13, 11, 2, 6, 5)
    assert o.pass_rate == pytest.approx(100 * 6 / 11)
    assert o.quantiles["median"] == pytest.approx(0.949)
    assert o.quantiles["min"] == pytest.approx(0.02) and o.quantiles["max"] == pytest.approx(0.99)
    assert o.bands == {"excellent": 6, "good": 0, "acceptable": 1, "poor": 0, "very_poor": 2, "critical": 2}
    e, v = a.by_machine_type["epiq7c"], a.by_machine_type["vivide95"]
    assert (e.files, e.scored, e.pass_count) == (7, 6, 4) and e.pass_rate == pytest.approx(200 / 3)
    assert (v.files, v.scored, v.pass_count) == (6, 5, 2) and v.pass_rate == pytest.approx(40.0)
    assert set(a.by_folder) == {"epiq7c-P1", "vivide95-P2"}
    assert a.skip_reasons == {"not_dicom": 1, "single_frame": 1}
    c = a.candidates
    assert (c["hq_candidates"], c["lq_candidates"]) == (4, 3)
    assert c["excluded"] == {"medium": 3, "status_conflict": 1, "skipped": 2}


def test_summary_from_results_csv(tmp_path):
    _, results = fx.build(tmp_path)
    records, source = load_results(results)
    assert source.name == "results.csv"
    assert {r.key for r in records if r.folder == "epiq7c-P1"} >= {"a1", "sub/a1"}
    _check(summarise(records, SelectionCriteria()))


def test_summary_json_gives_the_same_numbers(tmp_path):
    _, results = fx.build(tmp_path)
    a = summarise(read_summary_json(results / "summary.json"), SelectionCriteria())
    b = summarise(read_results_csv(results / "results.csv"), SelectionCriteria())
    _check(a)
    assert a.overall == b.overall and a.candidates == b.candidates


def test_caps_reported_in_dry_run(tmp_path):
    _, results = fx.build(tmp_path)
    records, _ = load_results(results)
    a = summarise(records, SelectionCriteria(max_hq=2, max_lq=1))
    assert a.candidates["hq_selected"] == 2 and a.candidates["lq_selected"] == 1
    # balanced over machine types: one HQ clip from each
    assert a.candidates["hq_selected_by_machine_type"] == {"epiq7c": 1, "vivide95": 1}


def test_cli_writes_json_and_plots(tmp_path):
    _, results = fx.build(tmp_path, csv_file=False)  # summary.json fallback
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["analyze", "--results", str(results), "--output", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "analysis.json").read_text())
    assert data["overall"]["scored"] == 11 and data["candidates"]["hq_candidates"] == 4
    assert "versions" in data
    for name in ("analysis_score_by_machine.png", "analysis_pass_rate_by_folder.png"):
        assert (out / name).stat().st_size > 1000
    assert "HQ 4/4" in r.output


def test_cli_missing_results_is_usage_error(tmp_path):
    r = CliRunner().invoke(app, ["analyze", "--results", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert "echoquality infer" in r.output
