"""A hand-built inference output (results.csv + summary.json) over small placeholder files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# (folder, key, score, status, skip_reason)
ROWS = [
    ("epiq7c-P1", "a1", 0.97, "PASS", None),
    ("epiq7c-P1", "a2", 0.95, "PASS", None),  # HQ boundary (>=)
    ("epiq7c-P1", "a3", 0.5, "PASS", None),  # medium
    ("epiq7c-P1", "a4", 0.1, "FAIL", None),  # LQ boundary (<=)
    ("epiq7c-P1", "a5", 0.05, "FAIL", None),
    ("epiq7c-P1", "sub/a1", 0.98, "PASS", None),  # same basename as a1
    ("epiq7c-P1", "a6", None, None, "not_dicom"),
    ("vivide95-P2", "b1", 0.99, "PASS", None),
    ("vivide95-P2", "b2", 0.949, "PASS", None),  # just below HQ
    ("vivide95-P2", "b3", 0.101, "FAIL", None),  # just above LQ
    ("vivide95-P2", "b4", 0.02, "FAIL", None),
    ("vivide95-P2", "b5", None, None, "single_frame"),
    ("vivide95-P2", "b6", 0.96, "FAIL", None),  # high score but FAIL: status conflict
]
HQ = {"a1", "a2", "sub/a1", "b1"}
LQ = {"a4", "a5", "b4"}


def _assessment(score: float) -> str:
    for lower, text in (
        (0.8, "Excellent quality"),
        (0.6, "Good quality"),
        (0.3, "Acceptable quality"),
        (0.2, "Poor quality"),
        (0.1, "Very poor quality"),
    ):
        if score >= lower:
            return text
    return "Critical issues"


def build(tmp: Path, *, csv_file: bool = True, json_file: bool = True) -> tuple[Path, Path]:
    """Create <tmp>/raw/<folder>/<key> files and <tmp>/results/{results.csv,summary.json}."""
    data, results = tmp / "raw", tmp / "results"
    results.mkdir(parents=True, exist_ok=True)
    for folder, key, *_ in ROWS:
        p = data / folder / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"DICM placeholder {folder}/{key}".encode())
    if csv_file:
        with (results / "results.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "folder",
                    "file_id",
                    "path",
                    "machine_type",
                    "manufacturer",
                    "model",
                    "patient_id",
                    "num_frames",
                    "fps",
                    "photometric",
                    "transfer_syntax",
                    "score",
                    "status",
                    "assessment",
                    "skip_reason",
                    "skip_detail",
                ]
            )
            for folder, key, score, status, skip in ROWS:
                w.writerow(
                    [
                        folder,
                        Path(key).name,
                        str(data / folder / key),
                        folder.split("-")[0],
                        "",
                        "",
                        folder.split("-")[1],
                        30,
                        30.0,
                        "RGB",
                        "",
                        "" if score is None else score,
                        status or "",
                        "" if score is None else _assessment(score),
                        skip or "",
                        "",
                    ]
                )
    if json_file:
        folders = []
        for name in sorted({r[0] for r in ROWS}):
            rows = [r for r in ROWS if r[0] == name]
            res = {
                k: {"score": s, "status": st, "assessment": _assessment(s), "path": str(data / name / k)}
                for _, k, s, st, _ in rows
                if s is not None
            }
            errors: dict[str, list[str]] = {}
            for _, k, s, _, skip in rows:
                if s is None:
                    errors.setdefault(skip, []).append(str(data / name / k))
            folders.append(
                {
                    "folder": name,
                    "status": "success",
                    "num_files": len(rows),
                    "results": res,
                    "error_stats": {
                        "error_counts": {k: len(v) for k, v in errors.items()},
                        "error_files": errors,
                    },
                }
            )
        (results / "summary.json").write_text(json.dumps({"folder_results": folders}))
    return data, results
