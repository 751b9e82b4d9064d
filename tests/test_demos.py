"""The `make demo` jobs, end to end (small settings), exactly as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _run(module: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", HF_HUB_OFFLINE="1")
    env.pop("NHS_LOOKUP_CATALOGUE", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def test_lookup_demo_runs_every_step_on_the_bundled_sample(tmp_path):
    out = tmp_path / "lookup"
    proc = _run("nhs_lookup.cli", ["demo", "--workdir", str(out), "--trials", "5"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation  # the evaluate step wrote its report
    assert (out / "batch_results.csv").read_text().count("\n") > 10
    assert (out / "optimized_config.yaml").is_file()
    model = json.loads((out / "lookup_model.json").read_text())  # the fit step, with its CV report
    assert model["training"]["cases"] == 33 and model["cv_metrics"]
    assert "cross-validation (5) of this fit" in proc.stdout
    validation = json.loads((out / "validation.json").read_text())
    assert validation
    assert "SAMPLE catalogue" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lookup"]  # nothing left outside --workdir


@pytest.mark.slow
def test_echo_demo_trains_on_synthetic_labels_and_says_so(tmp_path):
    out = tmp_path / "echo"
    proc = _run("echoquality.cli", ["demo", "--workdir", str(out), "--epochs", "1"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "trained_models" / "best_model.pt").is_file()
    summary = json.loads((out / "results" / "trained" / "summary.json").read_text())
    assert summary["total_processed"] > 0
    assert (out / "results" / "trained" / "analysis.json").is_file()
    assert "SYNTHETIC" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo"]  # nothing left outside --workdir
