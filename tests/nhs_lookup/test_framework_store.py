"""Result store: checkpoint + results in one transaction, no duplicates, WAL on SQLite."""

import pytest
import sqlalchemy
from sqlalchemy.exc import IntegrityError

from nhs_lookup.framework.outcome import CaseOutcome
from nhs_lookup.framework.report import build_report
from nhs_lookup.framework.store import TrainingStore


def _outcome(i: int, rank: int | None = 1, conf: float = 0.8, split: str = "train") -> CaseOutcome:
    return CaseOutcome(
        case_index=i,
        exam_name=f"CT Head {i}",
        data_source="Agfa" if i % 2 else "Comrad",
        modality_code="CT",
        expected=("CT Head",),
        predicted="CT Head" if rank == 1 else "CT Orbits",
        modality="CT",
        confidence=conf,
        correct_rank=rank,
        elapsed_ms=1.0,
        split=split,
    )


@pytest.fixture
def store(tmp_path):
    s = TrainingStore(str(tmp_path / "runs.db"))
    yield s
    s.close()


def test_checkpoint_commits_results_and_progress_together(store):
    sid = store.create_session("exp", {"a": 1}, {"split": {}}, {"v": 1}, total_cases=4)
    store.commit_checkpoint(sid, [_outcome(0), _outcome(1, rank=2)], 1, 2, {})
    assert store.last_checkpoint(sid) == (1, 2)
    assert store.get_session(sid).processed_cases == 2
    got = list(store.iter_outcomes(sid))
    assert [o.case_index for o in got] == [0, 1]
    assert got[1].correct_rank == 2 and got[1].expected == ("CT Head",)


def test_duplicate_case_rolls_back_the_whole_checkpoint(store):
    sid = store.create_session("exp", {}, {"split": {}}, {}, total_cases=4)
    store.commit_checkpoint(sid, [_outcome(0), _outcome(1)], 1, 2, {})
    with pytest.raises(IntegrityError):
        store.commit_checkpoint(sid, [_outcome(2), _outcome(1)], 2, 3, {})
    # neither case 2 nor checkpoint 2 was written
    assert store.last_checkpoint(sid) == (1, 2)
    assert store.count_results(sid) == 2


def test_sessions_are_found_by_experiment_name_latest_first(store):
    a = store.create_session("exp", {}, {"split": {}}, {}, 1)
    store.set_status(a, "completed", {"top1_accuracy": 1.0})
    b = store.create_session("exp", {}, {"split": {}}, {}, 1)
    latest = store.latest_session("exp")
    assert latest.id == b and latest.status == "running"
    assert store.get_session(a).metrics == {"top1_accuracy": 1.0}
    assert store.latest_session("other") is None


def test_sqlite_store_uses_wal(store):
    with store.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"


def test_iter_outcomes_streams_in_batches_in_case_order(store):
    sid = store.create_session("exp", {}, {"split": {}}, {}, 25)
    store.commit_checkpoint(sid, [_outcome(i) for i in range(10, 25)], 1, 15, {})
    store.commit_checkpoint(sid, [_outcome(i) for i in range(10)], 2, 25, {})
    assert [o.case_index for o in store.iter_outcomes(sid, batch=4)] == list(range(25))


def test_report_metrics_from_outcomes():
    outs = [_outcome(0, 1, 0.95), _outcome(1, 3, 0.6), _outcome(2, None, 0.3, "validation")]
    outs.append(
        CaseOutcome(case_index=3, exam_name="Did not attend", confidence=0.0, modality=None)
    )  # unlabelled no-match
    r = build_report(outs, success_threshold=0.7).to_dict()
    assert r["cases_processed"] == 4 and r["labelled_cases"] == 3
    assert r["top1_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["top5_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["mrr"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert r["success_rate"] == pytest.approx(1 / 4)
    assert r["no_matches"] == 1
    bands = {b["band"]: b for b in r["calibration"]}
    assert bands["0.90-1.00"]["accuracy"] == 1.0 and bands["0.50-0.70"]["accuracy"] == 0.0
    assert r["per_split"]["validation"]["cases"] == 1
    assert set(r["per_source"]) == {"Agfa", "Comrad", "(no source)"}


def test_one_engine_factory_for_every_store(tmp_path):
    """Training store and service store get their engines from nhs_lookup.storage.engine: SQLite with
    WAL, foreign keys and a busy timeout, from a URL or a plain file path."""
    from sqlalchemy import text

    from nhs_lookup.service.db import Store
    from nhs_lookup.storage.engine import database_url, make_engine

    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    training = TrainingStore(str(tmp_path / "train.db"))
    service = Store(f"sqlite:///{tmp_path / 'service.db'}")
    try:
        for engine in (training.engine, service.engine, make_engine(str(tmp_path / "plain.db"))):
            with engine.connect() as conn:
                assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
                assert conn.execute(text("pragma foreign_keys")).scalar() == 1
                assert conn.execute(text("pragma busy_timeout")).scalar() == 30000
    finally:
        training.close()
        service.close()
