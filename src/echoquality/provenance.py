"""Package versions recorded in every output (datasets, models, evaluations)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys


def package_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, this package and the named distributions that are installed."""
    names = ("radiology-qc", "numpy", *extra)
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "torch" in sys.modules:
        import torch

        out["torch_cuda"] = str(torch.version.cuda)
    return out
