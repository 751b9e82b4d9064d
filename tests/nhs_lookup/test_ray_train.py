"""`nhs-lookup train --engine ray` on a real two-node local cluster whose worker node is killed mid-run:
every case is committed exactly once and the stored rows equal the local process pool's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nhs_lookup.framework.paths import SAMPLE_CASES
from nhs_lookup.framework.store import TrainingStore

pytestmark = pytest.mark.slow


def _cases(path: Path, n: int) -> Path:
    items = json.loads(SAMPLE_CASES.read_text())
    path.write_text(json.dumps([dict(items[i % len(items)], case_id=f"case-{i}") for i in range(n)]))
    return path


def _rows(db: Path) -> list[tuple]:
    store = TrainingStore(str(db))
    try:
        session = store.latest_session("exp")
        assert session is not None and session.status == "completed"
        return [
            (o.case_index, o.case_id, o.predicted, round(o.confidence, 6), o.correct_rank, o.split, o.error)
            for o in store.iter_outcomes(session.id)
        ]
    finally:
        store.close()


def test_ray_train_survives_a_killed_worker_node(ray_cluster, tmp_path, engine_cache_dir):
    total = 160
    data = _cases(tmp_path / "cases.json", total)
    env = dict(ray_cluster.env, NHS_LOOKUP_CACHE=str(engine_cache_dir))
    base = [
        sys.executable,
        "-m",
        "nhs_lookup.cli",
        "train",
        "--dataset",
        str(data),
        "--experiment-name",
        "exp",
    ]
    base += ["--chunk-size", "10", "--checkpoint-interval", "40", "--no-progress", "--log-dir", str(tmp_path)]
    local_env = {k: v for k, v in env.items() if not k.startswith("RADQC_TEST")}
    local = subprocess.run(
        [*base, "--db", str(tmp_path / "local.db"), "--max-workers", "1"],
        env=local_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stdout + local.stderr

    cmd = [*base, "--db", str(tmp_path / "ray.db"), "--engine", "ray", "--address", ray_cluster.address]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ray_cluster.wait_for_worker_task()
        ray_cluster.kill_worker_node()
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    want, got = _rows(tmp_path / "local.db"), _rows(tmp_path / "ray.db")
    assert [r[0] for r in got] == list(range(total))  # every case exactly once
    assert got == want
    assert os.environ.get("RADQC_TEST_TASK_MARKS") is None


def test_engine_ray_without_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nhs_lookup.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    db = tmp_path / "r.db"
    res = CliRunner().invoke(
        app, ["train", "--dataset", str(SAMPLE_CASES), "--db", str(db), "--engine", "ray", "--no-progress"]
    )
    assert res.exit_code == 2
    assert "pip install 'radiology-qc[distributed]'" in res.output and "Traceback" not in res.output
    assert not db.exists()  # refused before any work
