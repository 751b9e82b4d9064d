"""The README's command blocks, run as written (issue 14): each ```bash block, in order, in a fresh
shell that has activated the project's virtualenv, in a temporary copy of the repository where
``../shared`` does not exist. Every block must exit 0 (the README documents nonzero codes in prose
only), except blocks preceded by ``<!-- readme-test: skip (reason) -->``, which are listed, not run.

The copy reuses this checkout's ``.venv`` (a symlink) instead of installing a new one, so the test
checks the README's commands and paths, not the installation (``make setup`` / ``make test`` do that).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV = REPO / ".venv"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<directive>[^>]*?) -->\n)?```bash\n(?P<body>.*?)```", re.S)


def readme_blocks(text: str) -> list[tuple[str | None, str]]:
    """(directive or None, script) for every ```bash block of *text*, in order."""
    return [(m.group("directive"), m.group("body")) for m in BLOCK.finditer(text)]


def test_blocks_are_found_and_skips_give_a_reason():
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 6
    for directive, _ in blocks:
        if directive is not None:
            assert re.fullmatch(r"skip \(.+\)", directive), directive
    assert any(". .venv/bin/activate" in body for _, body in blocks)


def _copy_repo(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files, as a fresh clone plus local edits would have."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        src = REPO / raw.decode()
        if src.is_file():
            target = dest / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    (dest / ".venv").symlink_to(VENV)
    os.utime(dest / "pyproject.toml", (0, 0))  # make's setup stamp stays newer: no reinstall


@pytest.mark.slow
@pytest.mark.skipif(not (VENV / "bin" / "activate").is_file(), reason="no .venv (run make setup)")
@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout"
)
def test_every_readme_block_runs_as_written(tmp_path):
    work = tmp_path / "radiology-qc"
    _copy_repo(work)
    assert not (work.parent / "shared").exists()  # the README says its workflows do not need it
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NHS_LOOKUP_", "ECHOQUALITY_", "MLFLOW_"))
    }
    env |= {"HOME": str(tmp_path / "home"), "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    skipped = []
    for i, (directive, body) in enumerate(readme_blocks(README.read_text()), start=1):
        if directive is not None:
            skipped.append(directive)
            continue
        script = f"set -e\n. .venv/bin/activate\n{body}"  # the reader's activated shell
        proc = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, (
            f"block {i} exited {proc.returncode}:\n{body}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["home", "radiology-qc"] or outside == ["radiology-qc"], outside
    assert (work / "mlruns" / "mlflow.db").is_file()  # echoquality train and nhs-lookup optimize share it
    assert skipped
