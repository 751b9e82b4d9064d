"""`echoquality infer --engine ray`: Ray stays out of other commands, a missing Ray is one clear line,
and a run on a real two-node local cluster whose worker node is killed mid-run still scores every file
exactly once, with the local engine's scores (within 1e-5) and skip reasons."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.model.weights import save_random_weights


def test_cli_help_does_not_import_ray():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from echoquality.cli import app\n"
        "r = CliRunner().invoke(app, ['infer', '--help'])\n"
        "assert r.exit_code == 0 and '--engine' in r.output, r.output\n"
        "from nhs_lookup.cli import app as lapp\n"
        "r = CliRunner().invoke(lapp, ['train', '--help'])\n"
        "assert r.exit_code == 0 and '--engine' in r.output, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_engine_ray_without_ray_is_one_line_naming_the_extra(tmp_path, synth_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    weights = save_random_weights(tmp_path / "w.pt", "tiny", seed=0)
    res = CliRunner().invoke(
        app,
        ["infer", "--quiet", "--device", "cpu", "--engine", "ray", "--data-dir", str(synth_root)]
        + ["--output", str(tmp_path / "out"), "--weights", str(weights)],
    )
    assert res.exit_code == 2
    assert "radiology-qc[distributed]" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out" / "results.csv").exists()


def _rows(out: Path) -> dict[str, tuple[float | None, str]]:
    with (out / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [f"{r['folder']}/{r['key']}" for r in rows]
    assert len(keys) == len(set(keys)), "a file appears twice"
    return {
        k: (float(r["score"]) if r["score"] else None, r["skip_reason"])
        for k, r in zip(keys, rows, strict=True)
    }


def test_ray_decode_task_decodes_like_a_local_worker(synth_root, synth_records):
    """The Ray task body gives the local worker's outcome, and like a local worker it leaves OpenCV one
    thread (several decode tasks share a node's cores; OpenCV's own pool would oversubscribe them)."""
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    from echoquality.config import PreprocessConfig
    from echoquality.inference.ray_engine import decode_task
    from echoquality.inference.workers import _Job, preprocess_job

    rec = next(r for r in synth_records if not r.expected_skip_reason)
    job = _Job(0, str(synth_root / rec.relative_path), rec.folder)
    before = cv2.getNumThreads()
    cv2.setNumThreads(4)
    try:
        out, tensor = decode_task(job, PreprocessConfig(), None)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)
    local = preprocess_job(job, PreprocessConfig(), None)
    assert out.reason is None and out.tensor is None and tensor is not None
    np.testing.assert_array_equal(tensor, local.tensor)


@pytest.mark.slow
def test_ray_engine_hanging_decode_costs_only_its_file(tmp_path, synth_root, synth_records):
    """A decode task that never returns (a real Ray worker asleep in the decode step) on a local Ray
    instance: it is cancelled after decode_timeout_s without progress, the others are retried, and every
    file is in results.csv once."""
    pytest.importorskip("ray")
    from echoquality.inference.workers import HANG_HOOK_ENV, timed_out_detail

    data = tmp_path / "raw" / "epiq7c-HANG01"
    data.mkdir(parents=True)
    for i, rec in enumerate([r for r in synth_records if not r.expected_skip_reason][:4]):
        shutil.copy2(synth_root / rec.relative_path, data / f"clip{i}")
    weights = save_random_weights(tmp_path / "tiny.pt", "tiny", seed=0)
    (tmp_path / "cfg.yaml").write_text("inference:\n  decode_timeout_s: 10\n")
    cmd = [sys.executable, "-m", "echoquality.cli", "infer", "--quiet", "--device", "cpu", "--no-plots"]
    cmd += ["--config", str(tmp_path / "cfg.yaml"), "--data-dir", str(data.parent), "--weights", str(weights)]
    cmd += ["--output", str(tmp_path / "out"), "--engine", "ray", "--workers", "2", "--batch-size", "2"]
    env = {**os.environ, HANG_HOOK_ENV: "clip1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = _rows(tmp_path / "out")
    assert sorted(rows) == [f"epiq7c-HANG01/clip{i}" for i in range(4)]
    assert rows["epiq7c-HANG01/clip1"] == (None, "decode_error")
    assert all(rows[f"epiq7c-HANG01/clip{i}"][0] is not None for i in (0, 2, 3))
    with (tmp_path / "out" / "results.csv").open(newline="") as fh:
        details = {r["key"]: r["skip_detail"] for r in csv.DictReader(fh)}
    assert details["clip1"] == timed_out_detail(10)


@pytest.mark.slow
def test_ray_cluster_run_survives_a_killed_worker_node(ray_cluster, tmp_path, synth_root, synth_records):
    pytest.importorskip("ray")
    root = tmp_path / "raw"
    for folder in sorted({r.folder for r in synth_records})[:3]:
        shutil.copytree(synth_root / folder, root / folder)
    weights = save_random_weights(tmp_path / "tiny.pt", "tiny", seed=0)
    common = [
        "infer",
        "--quiet",
        "--device",
        "cpu",
        "--no-plots",
        "--data-dir",
        str(root),
        "--weights",
        str(weights),
    ]
    local = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "local"), "--workers", "0"])
    assert local.exit_code == 0, local.output

    cmd = [sys.executable, "-m", "echoquality.cli", *common, "--output", str(tmp_path / "ray")]
    cmd += ["--engine", "ray", "--address", ray_cluster.address, "--batch-size", "2"]
    proc = subprocess.Popen(
        cmd, env=ray_cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        ray_cluster.wait_for_worker_task()
        ray_cluster.kill_worker_node()
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ray_cluster.start_worker_node()  # for the next test on this cluster
    assert proc.returncode == 0, output
    want, got = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert sorted(got) == sorted(want)  # every file exactly once
    assert sum(s is not None for s, _ in want.values()) >= 8
    for key, (score, reason) in want.items():
        assert got[key][1] == reason, key
        if score is None:
            assert got[key][0] is None, key
        else:
            assert got[key][0] == pytest.approx(score, abs=1e-5), key
    again = subprocess.run(cmd, env=ray_cluster.env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _rows(tmp_path / "ray") == got  # resume: nothing re-scored, nothing lost
    assert "Scoring" not in again.stdout
    assert os.environ.get("RADQC_TEST_TASK_MARKS") is None  # the hooks never leak into the test process
