"""Versions recorded with every session and study (what produced these numbers)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import nhs_lookup

from .paths import PACKAGE_DIR

PACKAGES = ("numpy", "scikit-learn", "rapidfuzz", "sqlalchemy", "optuna", "mlflow", "pyyaml")


def _git_commit() -> str | None:
    root = PACKAGE_DIR.parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def collect_versions(
    catalogue_path: str | Path | None = None, catalogue_rows: int | None = None
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nhs_lookup": nhs_lookup.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "catalogue": str(catalogue_path) if catalogue_path else "bundled sample (or $NHS_LOOKUP_CATALOGUE)",
        "catalogue_rows": catalogue_rows,
    }
    for name in PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info
