"""Worker processes of `nhs-lookup train` end when their parent is killed with SIGKILL (issue 9 item 10):
a real `train` subprocess with 2 workers, only the parent is killed, the workers must be gone soon after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nhs_lookup.framework.paths import SAMPLE_CASES

PROC = Path("/proc")
pytestmark = pytest.mark.skipif(not PROC.is_dir() or sys.platform != "linux", reason="needs Linux /proc")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    """Running (a zombie left for an init that never reaps counts as gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _cases(path: Path, n: int) -> Path:
    items = json.loads(SAMPLE_CASES.read_text())
    path.write_text(json.dumps([dict(items[i % len(items)], case_id=f"c{i}") for i in range(n)]))
    return path


def test_train_workers_exit_after_the_parent_is_killed(tmp_path, engine_cache_dir):
    data = _cases(tmp_path / "cases.json", 20_000)
    cmd = [
        sys.executable, "-m", "nhs_lookup.cli", "train", "--dataset", str(data), "--experiment-name", "orphans",
        "--db", str(tmp_path / "t.db"), "--chunk-size", "20", "--max-workers", "2", "--no-progress",
        "--log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    env = dict(os.environ, NHS_LOOKUP_CACHE=str(engine_cache_dir))
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _children(proc.pid)
        assert len(workers) >= 2, f"workers did not start (exit code {proc.poll()})"
        time.sleep(0.5)  # let them pick up work
        assert proc.poll() is None, "train finished before it could be killed: make the data set bigger"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as `kill -9 <pid>` does
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30  # generous: they normally go within a second
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [w for w in workers if _alive(w)]
        assert not left, f"worker process(es) {left} outlived their killed parent"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
