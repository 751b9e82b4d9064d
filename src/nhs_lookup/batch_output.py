"""Output files of ``batch`` / ``evaluate``: a writability check before any work, result files with
spreadsheet-safe cells, and bad input rows as a capped summary plus a full list in a file.

A 50 MB file of bad rows must not print a million lines: the console gets the first few errors and
the counts by kind, and every error goes to ``<output>.errors.csv`` next to the output.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nhs_lookup.records import RESULT_COLUMNS, CaseError, flatten_result
from nhs_lookup.textfile import SafeDictWriter

ERRORS_SHOWN = 20
ERROR_COLUMNS = ("source", "row", "kind", "message")


def writable_problem(path: Path, *, force: bool = False) -> str | None:
    """Why *path* cannot be written (one line), or ``None`` when it can. Creates missing parent
    folders and probes the folder with a temporary file, so a read-only place fails before any work."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if path.exists() and not force:
        return f"{path} exists (use --force to overwrite)"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-check-"):
            pass
    except OSError as exc:
        return f"cannot write to {path.parent}: {exc.strerror or exc}"
    return None


def errors_path(output: Path) -> Path:
    """Where the full list of bad input rows goes: ``results.csv`` -> ``results.errors.csv``."""
    return output.with_name(f"{output.stem}.errors.csv")


def write_results(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``LookupResult.to_dict()`` rows as JSON, or as flat CSV rows (formula cells neutralised)."""
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(list(rows), indent=1))
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = SafeDictWriter(fh, fieldnames=list(RESULT_COLUMNS))
        writer.writeheader()
        writer.writerows(flatten_result(r) for r in rows)


def write_errors(path: Path, errors: Sequence[CaseError]) -> None:
    """Every bad input row, one per line (source, row, kind, message)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = SafeDictWriter(fh, fieldnames=list(ERROR_COLUMNS))
        writer.writeheader()
        writer.writerows(
            {"source": e.source, "row": e.row, "kind": e.kind, "message": e.message} for e in errors
        )


def error_summary(errors: Sequence[CaseError], shown: int = ERRORS_SHOWN) -> list[str]:
    """Console lines: the first *shown* errors, then (when there are more) the counts by kind."""
    lines = [f"row {e.row}: {e.message}" for e in errors[:shown]]
    if len(errors) > shown:
        lines.append(f"... {len(errors) - shown} more bad row(s) not shown")
    if len(errors) > 1:
        counts = Counter(e.kind for e in errors)
        lines.append("bad rows by kind: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()))
    return lines
