"""Resuming runs: the per-folder result cache, the previous run's manifest and ``--clean``.

Results are cached per folder (``<out>/<folder>/inference_state.json``) with the weights' SHA-256 and a
hash of the preprocessing config: a re-run scores only new or changed files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from echoquality.config import PreprocessConfig
from echoquality.outputs import FileResult, atomic_write_json

from .errors import InferenceError

STATE_FILE = "inference_state.json"
STATE_FORMAT = 1


def preprocess_signature(cfg: PreprocessConfig) -> str:
    """Short hash of everything that changes the model input (part of the cache key)."""
    text = json.dumps(asdict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_state(path: Path, weights_sha: str, pre_hash: str) -> dict[str, FileResult]:
    """Cached results of a folder, only when they were produced with the same weights and preprocessing."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        return {}
    if data.get("weights_sha256") != weights_sha or data.get("preprocess_hash") != pre_hash:
        return {}
    files = data.get("files") or {}
    return {k: FileResult.from_state(v) for k, v in files.items() if isinstance(v, dict)}


def save_state(path: Path, results: dict[str, FileResult], weights_sha: str, pre_hash: str) -> None:
    atomic_write_json(
        path,
        {
            "format": STATE_FORMAT,
            "weights_sha256": weights_sha,
            "preprocess_hash": pre_hash,
            "files": {k: r.to_state() for k, r in sorted(results.items())},
        },
    )


def file_stat(path: Path) -> tuple[int | None, int | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


# --------------------------------------------------------------------------- helpers


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def clean_output(out: Path, data_dir: Path) -> None:
    """Empty the output folder (never the input): refuses folders that do not look like our output."""
    if not out.exists():
        return
    out_r, data_r = out.resolve(), data_dir.resolve()
    if out_r == data_r or data_r.is_relative_to(out_r):
        raise InferenceError(f"--clean refused: the output folder {out} contains the data folder {data_dir}")
    entries = list(out.iterdir())
    if entries and not any((out / n).exists() for n in ("run_info.json", "summary.json")):
        raise InferenceError(
            f"--clean refused: {out} is not empty and does not look like an echoquality output folder "
            "(no run_info.json or summary.json); remove it yourself or choose another --output"
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_previous_run(out: Path, weights_sha: str, pre_hash: str) -> None:
    """Refuse an output folder whose results were made with other weights or preprocessing."""
    previous = read_json(out / "run_info.json")
    if not previous:
        return
    if previous.get("weights_sha256") != weights_sha or previous.get("preprocess_hash") != pre_hash:
        what = "weights" if previous.get("weights_sha256") != weights_sha else "preprocessing settings"
        raise InferenceError(
            f"{out} holds results made with other {what} "
            f"(weights sha256 {str(previous.get('weights_sha256'))[:12]}..., preprocessing "
            f"{previous.get('preprocess_hash')}); choose another --output, or --force to re-score "
            "and replace them, or --clean to start afresh"
        )
