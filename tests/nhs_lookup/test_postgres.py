"""The framework store, `train` resume and shared Optuna studies on a real PostgreSQL server.

The server is started by the ``pg_server`` fixture (tests/_servers.py) and skipped with the reason
when no PostgreSQL binary is installed; ``.ci/run`` installs one so CI runs these.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from nhs_lookup.cases import load_cases
from nhs_lookup.cli import app
from nhs_lookup.config import LookupConfig
from nhs_lookup.framework import train as train_mod
from nhs_lookup.framework.outcome import CaseOutcome
from nhs_lookup.framework.paths import SAMPLE_CASES
from nhs_lookup.framework.store import TrainingStore
from nhs_lookup.framework.train import TrainOptions, run_training
from nhs_lookup.storage.engine import database_url

pytestmark = pytest.mark.slow


def _outcome(i: int, split: str = "train") -> CaseOutcome:
    return CaseOutcome(
        case_index=i,
        exam_name=f"CT HEAD {i}",
        case_id=f"c{i}",
        expected=("CT Head",),
        predicted="CT Head" if i % 2 else None,
        confidence=0.5 + i / 100,
        correct_rank=1 if i % 2 else None,
        elapsed_ms=1.25,
        split=split,
    )


def test_plain_postgresql_urls_map_to_psycopg():
    assert database_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_store_round_trip_and_no_duplicate_cases(pg_server):
    url = pg_server.create_database("store_rt").replace("postgresql+psycopg://", "postgresql://")
    store = TrainingStore(url)
    try:
        assert store.engine.dialect.name == "postgresql"
        sid = store.create_session("exp", {"a": 1}, {"split": {}}, {"v": "1"}, total_cases=4)
        outs = [_outcome(i) for i in range(3)] + [_outcome(3, "validation")]
        store.commit_checkpoint(sid, outs[:2], 1, 2, {"n": 2})
        store.commit_checkpoint(sid, outs[2:], 2, 4, {"n": 2})
        back = list(store.iter_outcomes(sid, batch=3))
        assert [(o.case_index, o.predicted, o.confidence, o.split, o.expected) for o in back] == [
            (o.case_index, o.predicted, o.confidence, o.split, o.expected) for o in outs
        ]
        assert store.last_checkpoint(sid) == (2, 4)
        assert store.get_session(sid).processed_cases == 4
        with pytest.raises(IntegrityError):  # a case committed twice is refused, with its checkpoint
            store.commit_checkpoint(sid, [_outcome(1)], 3, 5, {})
        assert store.last_checkpoint(sid) == (2, 4) and store.count_results(sid) == 4
    finally:
        store.close()


def _cases(path: Path, n: int) -> Path:
    items = json.loads(SAMPLE_CASES.read_text())
    out = [dict(items[i % len(items)], case_id=f"case-{i}") for i in range(n)]
    path.write_text(json.dumps(out))
    return path


def test_train_resume_on_postgresql(pg_server, tmp_path, engine_cache_dir, monkeypatch):
    url = pg_server.create_database("train_resume")
    data = _cases(tmp_path / "cases.json", 120)
    opts = TrainOptions(
        datasets=[data],
        experiment_name="pg-resume",
        db=url,
        config=LookupConfig(cache_dir=str(engine_cache_dir)),
        chunk_size=10,
        max_workers=1,
        checkpoint_interval=30,
        log_dir=tmp_path / "logs",
        show_progress=False,
    )
    real_map = train_mod.ordered_map

    def interrupted_map(*args, **kwargs):  # Ctrl-C after 7 chunks (70 cases: 2 checkpoints committed)
        for n, item in enumerate(real_map(*args, **kwargs)):
            if n == 7:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(train_mod, "ordered_map", interrupted_map)
    with pytest.raises(KeyboardInterrupt):
        run_training(opts)
    store = TrainingStore(url)
    try:
        first = store.latest_session("pg-resume")
        assert (first.status, first.processed_cases, store.count_results(first.id)) == ("interrupted", 60, 60)
    finally:
        store.close()
    monkeypatch.setattr(train_mod, "ordered_map", real_map)
    run = run_training(opts)
    assert (run.session_id, run.resumed_from, run.processed_this_run) == (first.id, 60, 60)
    store = TrainingStore(url)
    try:
        indexes = [o.case_index for o in store.iter_outcomes(run.session_id)]
        assert indexes == list(range(120))  # nothing lost, nothing twice
        assert store.latest_session("pg-resume").status == "completed"
    finally:
        store.close()


def test_two_optimize_join_processes_share_one_study(pg_server, tmp_path, engine_cache_dir, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))

    url = pg_server.create_database("study")
    cases, _ = load_cases(SAMPLE_CASES)
    assert sum(c.labelled for c in cases) >= 5
    env = dict(os.environ, NHS_LOOKUP_CACHE=str(engine_cache_dir))
    base = [sys.executable, "-m", "nhs_lookup.cli", "optimize", "--dataset", str(SAMPLE_CASES), "--db", url]
    base += [
        "--experiment-name",
        "shared",
        "--validation-split",
        "0",
        "--no-mlflow",
        "--strategy",
        "random_search",
    ]
    base += ["--early-stopping-threshold", "2", "--patience", "0"]
    created = CliRunner().invoke(app, [*base[3:], "--create-study"])  # in-process: one start-up less
    assert created.exit_code == 0, created.output
    procs = [
        subprocess.Popen(
            [
                *base,
                "--join",
                "--max-experiments",
                str(n),
                "--seed",
                str(seed),
                "--output",
                f"best{seed}.yaml",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed, n in ((1, 4), (2, 3))
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers)))  # no duplicated, no missing trial numbers
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == len(trials) == 4 + 3  # the two processes' trial counts add up
    # the creator queued the starting config once; neither joiner queued it again
    from nhs_lookup.config import ScoringConfig
    from nhs_lookup.framework.optimize import params_from_scoring

    start = params_from_scoring(ScoringConfig())
    assert [t.number for t in trials if t.params == start] == [0]
