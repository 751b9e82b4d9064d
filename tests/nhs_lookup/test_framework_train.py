"""`train`: chunked multi-process runs on the real engine, malformed input, resume after a real kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nhs_lookup.cases import load_cases
from nhs_lookup.cli import app
from nhs_lookup.config import LookupConfig
from nhs_lookup.framework.outcome import outcome_from_result
from nhs_lookup.framework.paths import SAMPLE_CASES
from nhs_lookup.framework.runner import chunked
from nhs_lookup.framework.store import TrainingStore
from nhs_lookup.framework.train import ResumeMismatchError, TrainOptions, run_training

REPO_ROOT = Path(__file__).resolve().parents[2]


def _sample_items() -> list[dict]:
    return json.loads(SAMPLE_CASES.read_text())


def _repeat(path: Path, n: int) -> Path:
    """The bundled sample cases repeated to *n* cases (distinct case ids), as one JSON file."""
    items = _sample_items()
    out = []
    for i in range(n):
        item = dict(items[i % len(items)])
        item["case_id"] = f"{item.get('case_id')}-{i}"
        out.append(item)
    path.write_text(json.dumps(out))
    return path


def _stored(db: Path, session_id: int) -> list[tuple]:
    store = TrainingStore(str(db))
    try:
        return [
            (o.case_index, o.exam_name, o.predicted, round(o.confidence, 6), o.correct_rank, o.split, o.error)
            for o in store.iter_outcomes(session_id)
        ]
    finally:
        store.close()


def test_chunked_is_lazy_and_complete():
    def gen():
        yield from range(10)

    assert [len(c) for c in chunked(gen(), 4)] == [4, 4, 2]
    assert [x for c in chunked(range(7), 3) for x in c] == list(range(7))
    with pytest.raises(ValueError):
        next(chunked([1], 0))


def test_one_and_two_workers_give_the_same_rows_as_the_engine(tmp_path, engine_cache_dir, sample_engine):
    data = _repeat(tmp_path / "cases.json", 70)
    config = LookupConfig(cache_dir=str(engine_cache_dir))
    runs = {}
    for workers, chunk in ((1, 9), (2, 4)):
        db = tmp_path / f"w{workers}.db"
        run = run_training(
            TrainOptions(
                datasets=[data], experiment_name="eq", db=str(db), config=config, chunk_size=chunk,
                max_workers=workers, checkpoint_interval=25, validation_split=0.3, split_by="random",
                log_dir=tmp_path / "logs", show_progress=False,
            )
        )  # fmt: skip
        assert run.status == "completed" and run.processed_this_run == 70
        rows = _stored(db, run.session_id)
        assert [r[0] for r in rows] == list(range(70))  # every case exactly once, in order
        runs[workers] = (rows, run)
        with sqlite3.connect(db) as conn:  # 25, 50, then the remainder
            assert conn.execute(
                "select cases_processed from training_checkpoints order by id"
            ).fetchall() == [(25,), (50,), (70,)]
    assert runs[1][0] == runs[2][0]
    assert runs[1][1].report["top1_accuracy"] == runs[2][1].report["top1_accuracy"]
    assert {r[5] for r in runs[1][0]} == {"train", "validation"}
    # the stored answers are the engine's own answers
    cases, _ = load_cases(data)
    for i in (0, 13, 69):
        expected = outcome_from_result(i, cases[i], sample_engine.lookup(cases[i].query), "x", 0.0)
        assert runs[1][0][i][2] == expected.predicted
        assert runs[1][0][i][4] == expected.correct_rank
    assert list((tmp_path / "logs").glob("training_*.log"))


def test_malformed_rows_are_reported_and_the_rest_processed(tmp_path, engine_cache_dir):
    items = _sample_items()[:5]
    bad = (
        items[:2]
        + [{"EXAM_NAME": ""}, {"MODALITY_CODE": "CT"}, {"EXAM_NAME": "CT Head", "acceptable": 5}]
        + items[2:]
    )
    (tmp_path / "a.json").write_text(json.dumps(bad))
    (tmp_path / "b.csv").write_text(
        "EXAM_NAME,MODALITY_CODE,DATA_SOURCE,acceptable\nCT Head,CT,Site B,CT Head\n,XR,Site B,\nChest X-ray,XR,Site B,XR Chest\n"
    )
    run = run_training(
        TrainOptions(
            datasets=[tmp_path], experiment_name="bad-rows", db=str(tmp_path / "r.db"),
            config=LookupConfig(cache_dir=str(engine_cache_dir)), chunk_size=3, max_workers=1,
            log_dir=tmp_path / "logs", show_progress=False,
        )
    )  # fmt: skip
    assert run.report["cases_processed"] == 5 + 2
    assert run.report["file_errors"] == 4
    messages = [(Path(e.source).name, e.row) for e in run.dataset.errors]
    assert messages == [("a.json", 3), ("a.json", 4), ("a.json", 5), ("b.csv", 2)]
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("select count(*) from training_file_errors").fetchone() == (4,)


def test_corrupt_file_is_a_clear_usage_error(tmp_path):
    (tmp_path / "broken.json").write_text('[{"EXAM_NAME": "CT Head"}, {"EXAM_NA')
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--dataset",
            str(tmp_path / "broken.json"),
            "--db",
            str(tmp_path / "r.db"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "broken.json: not valid JSON (line 1" in text
    missing = CliRunner().invoke(
        app, ["train", "--dataset", str(tmp_path / "nope.csv"), "--db", str(tmp_path / "r.db")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output


def test_finished_experiment_is_not_redone_and_force_starts_a_new_session(
    tmp_path, engine_cache_dir, monkeypatch
):
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))
    monkeypatch.chdir(tmp_path)
    data = _repeat(tmp_path / "cases.json", 12)
    args = [
        "train",
        "--dataset",
        str(data),
        "--experiment-name",
        "again",
        "--db",
        "r.db",
        "--max-workers",
        "1",
        "--no-progress",
    ]
    first = CliRunner().invoke(app, args + ["--report-json", "report.json"])
    assert first.exit_code == 0, first.output
    assert json.loads((tmp_path / "report.json").read_text())["cases_processed"] == 12
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "already completed" in second.output
    forced = CliRunner().invoke(app, args + ["--force"])
    assert forced.exit_code == 0 and "new session" in forced.output
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute(
            "select count(*), count(distinct session_id) from training_results"
        ).fetchone() == (24, 2)
    # same experiment name on other files: refuse to mix them into one session
    other = _repeat(tmp_path / "other.json", 5)
    with pytest.raises(ResumeMismatchError):
        store = TrainingStore(str(tmp_path / "r.db"))
        sid = store.latest_session("again").id
        store.set_status(sid, "interrupted")
        store.close()
        run_training(
            TrainOptions(
                datasets=[other], experiment_name="again", db=str(tmp_path / "r.db"), show_progress=False
            )
        )


@pytest.mark.slow
def test_resume_after_sigkill_loses_nothing_and_duplicates_nothing(tmp_path, engine_cache_dir):
    total = 6000
    data = _repeat(tmp_path / "big.json", total)
    db = tmp_path / "kill.db"
    cmd = [
        sys.executable, "-m", "nhs_lookup.cli", "train", "--dataset", str(data), "--experiment-name", "killme",
        "--db", str(db), "--chunk-size", "50", "--max-workers", "2", "--checkpoint-interval", "500", "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ, NHS_LOOKUP_CACHE=str(engine_cache_dir))
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    checkpointed = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as conn:
                        row = conn.execute("select max(cases_processed) from training_checkpoints").fetchone()
                    checkpointed = row[0] or 0
                except sqlite3.OperationalError:  # tables not created yet
                    checkpointed = 0
            if checkpointed:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, like kill -9
        proc.wait(timeout=30)
    assert checkpointed, "no checkpoint was written before the deadline"
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        status, processed = conn.execute("select status, processed_cases from training_sessions").fetchone()
        stored = conn.execute("select count(*) from training_results").fetchone()[0]
    assert status == "running", "the run finished before it could be killed: make the data set bigger"
    assert processed < total and processed % 500 == 0
    assert stored == processed  # results and checkpoint were committed together

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed after {processed} cases" in " ".join(again.stdout.split())
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select case_index from training_results order by case_index").fetchall()
        status, done = conn.execute("select status, processed_cases from training_sessions").fetchone()
        sessions = conn.execute("select count(*) from training_sessions").fetchone()[0]
    assert [r[0] for r in rows] == list(range(total))  # all present, none twice
    assert (status, done, sessions) == ("completed", total, 1)


def test_train_on_shared_dev_gold_matches_in_process_engine(
    tmp_path, shared_dir, nhs_engine, engine_cache_dir
):
    gold = shared_dir / "nhs" / "dev_gold.json"
    run = run_training(
        TrainOptions(
            datasets=[gold], experiment_name="dev", db=str(tmp_path / "d.db"),
            config=LookupConfig(cache_dir=str(engine_cache_dir)), catalogue=str(shared_dir / "nhs" / "NHS.json"),
            chunk_size=30, max_workers=2, log_dir=tmp_path / "logs", show_progress=False,
        )
    )  # fmt: skip
    cases, _ = load_cases(gold)
    ranks = [r[4] for r in _stored(tmp_path / "d.db", run.session_id)]
    direct = [
        outcome_from_result(i, c, nhs_engine.lookup(c.query), "x", 0).correct_rank
        for i, c in enumerate(cases)
    ]
    assert ranks == direct
    assert run.report["top1_accuracy"] == pytest.approx(sum(r == 1 for r in direct) / len(cases), abs=1e-4)
    assert set(run.report["per_source"]) == {c.query.data_source for c in cases}
    assert run.report["split"]["validation_sources"]  # held out by data source by default
