"""Per-run log file ``logs/training/training_YYYYMMDD_HHMMSS.log``."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

LOGGER_NAME = "nhs_lookup.framework"


def open_run_log(log_dir: Path, prefix: str = "training") -> tuple[logging.Logger, Path]:
    """Attach a new timestamped file handler to the framework logger and return (logger, path)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    path = log_dir / f"{prefix}_{stamp}.log"
    n = 1
    while path.exists():  # two runs in the same second
        path = log_dir / f"{prefix}_{stamp}_{n}.log"
        n += 1
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(process)d %(message)s"))
    logger.addHandler(handler)
    return logger, path


def close_run_log(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            h.close()
            logger.removeHandler(h)
