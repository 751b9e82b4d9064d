"""What both systems need from Ray: a lazy import with a one-line install hint, joining or starting a
cluster, and the fault-test hook their tasks call. Imported only on ``--engine ray`` paths."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

RAY_MISSING = "--engine ray needs Ray: pip install 'radiology-qc[distributed]'"
#: Test hooks (fault tests only): each task writes a marker named after its node label, then sleeps.
MARK_DIR_ENV, NODE_LABEL_ENV, TASK_SLEEP_ENV = (
    "RADQC_TEST_TASK_MARKS",
    "RADQC_TEST_NODE",
    "RADQC_TEST_TASK_SLEEP",
)


class RayUnavailableError(ValueError):
    """``--engine ray`` without Ray installed."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayUnavailableError` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(RAY_MISSING) from exc
    return ray


def connect(address: str | None, num_cpus: int) -> Any:
    """Join the cluster at *address* ("auto" or HOST:PORT), or start a local one with *num_cpus* CPUs."""
    ray = import_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    return ray


def test_task_hook() -> None:
    """Fault-test hook: mark that a task started on this node and optionally sleep (no-op normally)."""
    marks = os.environ.get(MARK_DIR_ENV)
    if marks:
        label = os.environ.get(NODE_LABEL_ENV, "node")
        Path(marks, f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
        time.sleep(float(os.environ.get(TASK_SLEEP_ENV, "0") or 0))
