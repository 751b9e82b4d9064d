"""Both CLIs as scripts: output to a pipe or a log file keeps the result tables readable."""

from __future__ import annotations

import os
import subprocess
import sys

from nhs_lookup.framework.paths import SAMPLE_CASES


def test_piped_tables_are_not_cut_to_80_columns(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["NHS_LOOKUP_CACHE"] = str(tmp_path / "cache")
    env.pop("NHS_LOOKUP_CATALOGUE", None)
    cmd = [sys.executable, "-m", "nhs_lookup.cli", "evaluate", str(SAMPLE_CASES), "--cv", "5"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    header = next(line for line in res.stdout.splitlines() if "fold" in line and "top-1" in line)
    for column in ("top-5", "no-match P", "auto-accept@99%", "its precision", "oracle"):
        assert column in header, header  # Rich's 80-column default for a pipe truncates these to "…"
