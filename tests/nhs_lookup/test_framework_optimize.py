"""`optimize`: improves a deliberately bad config on the bundled sample; grid resume; early stop; MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nhs_lookup.cases import load_cases
from nhs_lookup.cli import app
from nhs_lookup.config import LookupConfig, load_config
from nhs_lookup.framework.optimize import OptimizeOptions, run_optimization, score_prepared
from nhs_lookup.framework.paths import SAMPLE_CASES

# Weights on the least informative component, no semantic evidence, bonuses that reward the wrong rows.
BAD_SCORING = {
    "retriever_top_k": 10,
    "weights_component": {
        "anatomy": 0.0,
        "modality": 0.0,
        "laterality": 0.0,
        "contrast": 0.0,
        "technique": 1.0,
    },
    "weights_final": {"component": 0.05, "semantic": 0.0, "frequency": 0.95},
    "interventional_bonus": 0.0,
    "interventional_penalty": 0.0,
    "specificity_penalty_weight": 0.0,
    "exact_match_bonus": 0.0,
    "synonym_match_bonus": 0.0,
    "contrast_mismatch_score": 1.0,
    "contrast_null_score": 1.0,
}


@pytest.fixture
def labelled_sample():
    cases, errors = load_cases(SAMPLE_CASES)
    assert not errors
    return [c for c in cases if c.labelled]


def test_optimize_command_improves_a_bad_config(
    tmp_path, engine_cache_dir, sample_engine, labelled_sample, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"scoring": BAD_SCORING}))
    bad = load_config(tmp_path / "bad.yaml")
    prepared = [(c, sample_engine.prepare(c.query)) for c in labelled_sample]
    bad_score = score_prepared(sample_engine, prepared, bad.scoring)
    good_score = score_prepared(sample_engine, prepared, LookupConfig().scoring)
    assert bad_score.top1 < good_score.top1 - 0.1, "the 'bad' config is not bad enough to test anything"

    result = CliRunner().invoke(
        app,
        [
            "optimize", "--dataset", str(SAMPLE_CASES), "--config-path", "bad.yaml", "--validation-split", "0",
            "--max-experiments", "40", "--strategy", "tpe", "--seed", "1", "--db", "opt.db", "--no-mlflow",
            "--output", "best.yaml", "--report-json", "report.json", "--early-stopping-threshold", "1.01",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["baseline_train"]["top1"] == pytest.approx(bad_score.top1)
    assert report["best_train"]["top1"] > bad_score.top1 + 0.1
    # the written config loads and reproduces the reported score
    best = load_config(tmp_path / "best.yaml")
    assert score_prepared(sample_engine, prepared, best.scoring).top1 == pytest.approx(
        report["best_train"]["top1"]
    )
    assert sum(vars(best.scoring.weights_component).values()) == pytest.approx(1.0)
    assert report["trials_total"] == 40 and report["importances"]


def test_grid_search_resumes_without_repeating_points_and_early_stopping(
    tmp_path, sample_engine, labelled_sample
):
    train, val = labelled_sample[::2], labelled_sample[1::2]
    opts = OptimizeOptions(
        study_name="grid", storage=str(tmp_path / "o.db"), strategy="grid_search", max_experiments=4,
        early_stopping_threshold=1.01, output=tmp_path / "g.yaml", mlflow=False,
    )  # fmt: skip
    first = run_optimization(sample_engine, train, val, LookupConfig(), opts)
    assert first.trials_this_run == 4 and first.best_validation is not None
    assert first.best_validation.cases == len(val)
    again = run_optimization(sample_engine, train, val, LookupConfig(), opts)
    assert again.trials_this_run == 0 and again.trials_total == 4 and again.notes

    stop = OptimizeOptions(
        study_name="stop", storage=str(tmp_path / "o.db"), strategy="random_search", max_experiments=20,
        early_stopping_threshold=0.0, output=tmp_path / "s.yaml", mlflow=False,
    )  # fmt: skip
    stopped = run_optimization(sample_engine, train, val, LookupConfig(), stop)
    assert stopped.trials_this_run == 1 and "threshold" in stopped.stopped_because


def test_trials_are_logged_to_mlflow(tmp_path, sample_engine, labelled_sample, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    opts = OptimizeOptions(
        study_name="ml", storage=str(tmp_path / "o.db"), strategy="random_search", max_experiments=3,
        early_stopping_threshold=1.01, output=tmp_path / "m.yaml", mlflow=True, mlflow_uri=uri,
    )  # fmt: skip
    run = run_optimization(sample_engine, labelled_sample, [], LookupConfig(), opts)
    assert run.mlflow_note.startswith("MLflow runs logged")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ml")
    (mlrun,) = client.search_runs([exp.experiment_id])
    history = client.get_metric_history(mlrun.info.run_id, "objective")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert "m.yaml" in {Path(a.path).name for a in client.list_artifacts(mlrun.info.run_id)}


def test_optimize_on_shared_dev_gold_reports_both_splits(tmp_path, shared_dir, nhs_engine):
    cases, _ = load_cases(shared_dir / "nhs" / "dev_gold.json")
    from collections import Counter

    from nhs_lookup.framework.split import plan_split, source_of, split_cases

    plan = plan_split("source", 0.3, 0, Counter(source_of(c) for c in cases))
    train, val = split_cases(cases, plan)
    opts = OptimizeOptions(
        study_name="dev", storage=str(tmp_path / "o.db"), max_experiments=15, early_stopping_threshold=1.01,
        output=tmp_path / "d.yaml", mlflow=False,
    )  # fmt: skip
    run = run_optimization(nhs_engine, train, val, nhs_engine.config, opts)
    # trial 0 is the starting config, so its training figures are exactly the baseline's
    assert run.best_train.objective >= run.baseline_train.objective
    assert run.baseline_validation is not None and run.baseline_validation.cases == len(val) > 0
    assert {c.query.data_source for c in val}.isdisjoint({c.query.data_source for c in train})


def test_create_study_queues_the_starting_config_once_and_joiners_never(
    tmp_path, engine_cache_dir, monkeypatch
):
    """Workers joining an empty shared study at the same moment must not each run the starting config:
    `--create-study` queues it (from --config) once, a `--join` process only takes queued trials first."""
    import optuna

    from nhs_lookup.framework.optimize import params_from_scoring

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))
    (tmp_path / "start.yaml").write_text(yaml.safe_dump({"scoring": {"exact_match_bonus": 0.07}}))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    base = ["optimize", "--dataset", str(SAMPLE_CASES), "--db", url, "--experiment-name", "shared"]
    base += [
        "--validation-split",
        "0",
        "--no-mlflow",
        "--strategy",
        "random_search",
        "--config",
        "start.yaml",
    ]
    created = CliRunner().invoke(app, [*base, "--create-study"])
    assert created.exit_code == 0, created.output
    start = params_from_scoring(load_config(tmp_path / "start.yaml").scoring)
    queued = optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    assert [(t.number, t.state) for t in queued] == [(0, optuna.trial.TrialState.WAITING)]
    assert queued[0].system_attrs["fixed_params"] == start != params_from_scoring(LookupConfig().scoring)
    again = CliRunner().invoke(app, [*base, "--create-study"])
    assert again.exit_code == 2 and "already exists" in again.output

    for seed in (1, 2):  # two workers, one after the other: the second finds no queued trial
        joined = CliRunner().invoke(app, [*base, "--join", "--max-experiments", "2", "--seed", str(seed)])
        assert joined.exit_code == 0, joined.output
    trials = optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.number for t in trials if t.params == start] == [0]
