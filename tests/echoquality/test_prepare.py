"""`echoquality prepare-data`: threshold semantics, caps, copying, labels, review queue, safety."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _results_fixture as fx  # noqa: E402

from echoquality.cli import app  # noqa: E402
from echoquality.results_table import ResultRecord, load_results  # noqa: E402
from echoquality.training.selection import (  # noqa: E402
    SelectionCriteria,
    balanced_sample,
    classify,
    select,
)


def _rec(score, status, machine="m", key="k"):
    return ResultRecord(
        "f-1", key, key, key, machine, None, score, status, None, None if score is not None else "x"
    )


@pytest.mark.parametrize(
    ("score", "status", "expected"),
    [
        (0.95, "PASS", "hq"),  # boundary included
        (0.9499999, "PASS", "medium"),
        (1.0, "PASS", "hq"),
        (0.96, "FAIL", "status_conflict"),
        (0.1, "FAIL", "lq"),  # boundary included
        (0.1000001, "FAIL", "medium"),
        (0.0, "FAIL", "lq"),
        (0.05, "PASS", "status_conflict"),
        (None, None, "skipped"),
    ],
)
def test_thresholds_mean_what_they_say(score, status, expected):
    assert classify(_rec(score, status), 0.95, 0.1) == expected


def test_thresholds_are_not_bounded_by_assessment_text():
    # the original needed "Excellent" (>= 0.8) and "Critical" (< 0.1): 0.7 / 0.15 were no-ops there
    assert classify(_rec(0.72, "PASS"), 0.7, 0.15) == "hq"
    assert classify(_rec(0.14, "FAIL"), 0.7, 0.15) == "lq"


def test_balanced_seeded_sampling():
    recs = [_rec(0.99, "PASS", machine="big", key=f"b{i}") for i in range(20)]
    recs += [_rec(0.99, "PASS", machine="small", key=f"s{i}") for i in range(3)]
    recs += [_rec(0.99, "PASS", machine="mid", key=f"m{i}") for i in range(8)]
    pick = balanced_sample(recs, 12, np.random.default_rng(1))
    counts = {m: sum(r.machine_type == m for r in pick) for m in ("big", "small", "mid")}
    assert counts == {"small": 3, "mid": 4, "big": 5}  # small gives its spare share to the others
    again = balanced_sample(list(reversed(recs)), 12, np.random.default_rng(1))
    assert [r.key for r in pick] == [r.key for r in again]
    other = balanced_sample(recs, 12, np.random.default_rng(2))
    assert [r.key for r in other] != [r.key for r in pick]
    sel = select(recs, SelectionCriteria(max_hq=12, seed=1))
    assert [r.key for r in sel.high] == [r.key for r in pick] and sel.hq_over_cap == 19


def _run(args):
    return CliRunner().invoke(app, ["prepare-data", *args])


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "echo_annotations.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_cli_builds_training_set(tmp_path):
    data, results = fx.build(tmp_path)
    out = tmp_path / "training_data"
    r = _run(["--results", str(results), "--output", str(out), "--data-dir", str(data), "--seed", "3"])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert list(rows[0])[:10] == [
        "video_path",
        "quality_score",
        "filename",
        "machine_type",
        "score",
        "status",
        "assessment",
        "folder",
        "file_id",
        "patient_id",
    ]
    keys = {
        Path(row["source_path"]).relative_to(data.resolve()).as_posix().split("/", 1)[1]: row for row in rows
    }
    assert {k for k, v in keys.items() if v["quality_score"] == "1"} == fx.HQ
    assert {k for k, v in keys.items() if v["quality_score"] == "0"} == fx.LQ
    names = [row["filename"] for row in rows]
    assert len(set(names)) == len(names) == 7  # a1 and sub/a1 share a basename, not a name
    for row in rows:
        assert row["filename"].startswith(("hq_", "lq_")) and row["label_source"] == "pseudo"
        copied = out / row["video_path"]
        assert copied.read_bytes() == Path(row["source_path"]).read_bytes()
    info = json.loads((out / "dataset_analysis.json").read_text())
    assert (info["total_samples"], info["high_quality_count"], info["low_quality_count"]) == (7, 4, 3)
    assert info["files_copied"] == 7 and info["missing_files"] == 0 and info["seed"] == 3
    assert info["machine_type_distribution"] == {"epiq7c": 5, "vivide95": 2}
    assert info["excluded"] == {"medium": 3, "status_conflict": 1, "skipped": 2}
    assert "numpy" in info["versions"]


def test_refuses_to_overwrite_without_force(tmp_path):
    data, results = fx.build(tmp_path)
    out = tmp_path / "td"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    r = _run(["--results", str(results), "--output", str(out), "--data-dir", str(data)])
    assert r.exit_code == 2  # a usage error, like the other ones
    assert "--force" in r.output
    assert not (out / "echo_annotations.csv").exists()
    r = _run(["--results", str(results), "--output", str(out), "--data-dir", str(data), "--force"])
    assert r.exit_code == 0, r.output
    assert (out / "keep.txt").read_text() == "user file"  # --force replaces only what prepare-data writes
    assert len(_rows(out)) == 7


def test_missing_source_files_counted_not_fatal(tmp_path):
    data, results = fx.build(tmp_path)
    (data / "epiq7c-P1" / "a2").unlink()
    (data / "vivide95-P2" / "b4").unlink()
    out = tmp_path / "td"
    r = _run(["--results", str(results), "--output", str(out), "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "dataset_analysis.json").read_text())
    assert info["missing_files"] == 2 and info["files_copied"] == 5
    assert len(_rows(out)) == 5
    assert "missing source file" in r.output


def test_human_labels_override_and_add(tmp_path):
    data, results = fx.build(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n"
        "epiq7c-P1/a1,0\n"  # overrides pseudo HQ
        "epiq7c-P1/a3,good\n"  # medium clip added by a human
        f"{data / 'vivide95-P2' / 'b4'},0\n"  # absolute path, confirms pseudo LQ
        "vivide95-P2/b5,1\n"  # skipped by inference: not usable
        "epiq7c-P1/a4,\n"  # unlabelled review row: ignored
    )
    out = tmp_path / "td"
    r = _run(
        ["--results", str(results), "--output", str(out), "--data-dir", str(data), "--labels", str(labels)]
    )
    assert r.exit_code == 0, r.output
    rows = {Path(row["source_path"]).relative_to(data.resolve()).as_posix(): row for row in _rows(out)}
    assert (
        rows["epiq7c-P1/a1"]["quality_score"] == "0" and rows["epiq7c-P1/sub/a1"]["label_source"] == "pseudo"
    )
    assert rows["epiq7c-P1/a1"]["quality_score"] == "0" and rows["epiq7c-P1/a1"]["label_source"] == "human"
    assert rows["epiq7c-P1/a3"]["quality_score"] == "1" and rows["epiq7c-P1/a3"]["label_source"] == "human"
    assert rows["vivide95-P2/b4"]["label_source"] == "human"
    assert "vivide95-P2/b5" not in rows
    assert len(rows) == 8
    info = json.loads((out / "dataset_analysis.json").read_text())
    assert info["human_labels"]["pseudo_labels_overridden"] == 1
    assert info["human_labels"]["pseudo_labels_confirmed"] == 1
    assert info["human_labels"]["human_labelled_but_skipped_by_inference"] == 1
    # only the human labels
    out2 = tmp_path / "td2"
    r = _run(
        [
            "--results",
            str(results),
            "--output",
            str(out2),
            "--data-dir",
            str(data),
            "--labels",
            str(labels),
            "--no-pseudo-labels",
        ]
    )
    assert r.exit_code == 0, r.output
    assert {row["label_source"] for row in _rows(out2)} == {"human"} and len(_rows(out2)) == 3


def test_review_queue_picks_scores_nearest_the_pass_threshold(tmp_path):
    data, results = fx.build(tmp_path)
    out = tmp_path / "td"
    r = _run(
        ["--results", str(results), "--output", str(out), "--data-dir", str(data), "--review-queue", "3"]
    )
    assert r.exit_code == 0, r.output
    with (out / "review_queue.csv").open() as fh:
        q = list(csv.DictReader(fh))
    assert [row["path"] for row in q][:1] == ["vivide95-P2/b3"]  # |0.101 - 0.3| is the smallest
    assert {row["path"] for row in q} == {"vivide95-P2/b3", "epiq7c-P1/a4", "epiq7c-P1/a3"}
    assert all(row["label"] == "" for row in q)
    # the queue, once labelled, feeds straight back in as --labels
    labelled = tmp_path / "labelled.csv"
    labelled.write_text((out / "review_queue.csv").read_text().replace(",,", ",1,"))
    records, _ = load_results(results)
    assert len(records) == len(fx.ROWS)
    r = _run(
        [
            "--results",
            str(results),
            "--output",
            str(tmp_path / "td3"),
            "--data-dir",
            str(data),
            "--labels",
            str(labelled),
        ]
    )
    assert r.exit_code == 0, r.output
    assert sum(row["label_source"] == "human" for row in _rows(tmp_path / "td3")) == 3


def test_bad_thresholds_are_usage_errors(tmp_path):
    data, results = fx.build(tmp_path)
    r = _run(
        [
            "--results",
            str(results),
            "--output",
            str(tmp_path / "o"),
            "--high-quality-threshold",
            "0.1",
            "--low-quality-threshold",
            "0.2",
        ]
    )
    assert r.exit_code == 2


def test_relative_paths_resolved_from_run_info_data_dir(tmp_path):
    data, results = fx.build(tmp_path)
    text = (results / "results.csv").read_text().replace(str(data), "moved/raw")  # paths no longer valid
    (results / "results.csv").write_text(text)
    (results / "run_info.json").write_text(json.dumps({"data_dir": str(data)}))
    out = tmp_path / "td"
    r = _run(["--results", str(results), "--output", str(out)])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "dataset_analysis.json").read_text())
    assert info["files_copied"] == 7 and info["missing_files"] == 0


def test_build_training_set_is_the_library_workflow(tmp_path):
    from echoquality.training.trainset import PrepareInputError, TrainingSetRequest, build_training_set

    data, results = fx.build(tmp_path)
    out = tmp_path / "td"
    request = TrainingSetRequest(results, out, SelectionCriteria(seed=3), data_dir=data)
    built = build_training_set(request)
    assert built.report.total_samples == len(_rows(out)) == 7
    assert (built.selection.hq_candidates, built.human_labels, built.data_dir) == (4, 0, data)
    # bad options are input errors (CLI exit 2); an output in use is a plain PrepareError (exit 1)
    with pytest.raises(PrepareInputError, match="needs --labels"):
        build_training_set(TrainingSetRequest(results, out, use_pseudo=False))
    with pytest.raises(PrepareInputError):
        build_training_set(TrainingSetRequest(tmp_path / "nowhere", out))
    with pytest.raises(PrepareInputError, match="--force"):  # a usage error: the CLI exits 2
        build_training_set(request)
