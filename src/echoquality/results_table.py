"""Read an inference output folder into flat, typed per-file records.

`echoquality infer` writes ``results.csv`` (one row per file, scored or skipped) and the
original tool's ``summary.json``. ``analyze`` and ``prepare-data`` both start from here so
they see exactly the same rows. ``results.csv`` is preferred; ``summary.json`` (also the
original tool's, which has no CSV) is the fallback.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from echoquality.dicom.vendors import machine_type_from_folder


class ResultsError(Exception):
    """The results folder is missing or unreadable (a usage error for the CLI)."""


@dataclass(frozen=True)
class ResultRecord:
    """One file from an inference run. ``score`` is None for skipped files."""

    folder: str
    key: str  # path relative to the folder (unique within a folder)
    file_id: str  # basename
    path: str  # path as written by inference
    machine_type: str
    patient_id: str | None
    score: float | None
    status: str | None  # PASS | FAIL | None
    assessment: str | None
    skip_reason: str | None

    @property
    def scored(self) -> bool:
        return self.score is not None


def machine_from_folder(folder: str) -> str:
    """The folder prefix before the first '-', else 'unknown' (the one rule: ``dicom.vendors``)."""
    return machine_type_from_folder(folder)


def _float_or_none(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _key_from_path(path: str, folder: str, file_id: str) -> str:
    """Path relative to the folder, found by locating the folder component in *path*."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == folder and i < len(parts) - 1:
            return "/".join(parts[i + 1 :])
    return file_id or Path(path).name


def read_results_csv(path: Path) -> list[ResultRecord]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "folder" not in reader.fieldnames:
            raise ResultsError(f"{path} has no 'folder' column: not an echoquality results.csv")
        records = []
        for row in reader:
            folder = row.get("folder", "") or ""
            file_id = row.get("file_id") or Path(row.get("path", "")).name
            file_path = row.get("path", "") or ""
            key = row.get("key") or row.get("relative_path") or _key_from_path(file_path, folder, file_id)
            score = _float_or_none(row.get("score"))
            records.append(
                ResultRecord(
                    folder=folder,
                    key=key,
                    file_id=file_id,
                    path=file_path,
                    machine_type=_str_or_none(row.get("machine_type")) or machine_from_folder(folder),
                    patient_id=_str_or_none(row.get("patient_id")),
                    score=score,
                    status=_str_or_none(row.get("status")) if score is not None else None,
                    assessment=_str_or_none(row.get("assessment")) if score is not None else None,
                    skip_reason=_str_or_none(row.get("skip_reason"))
                    or (None if score is not None else "unknown"),
                )
            )
    return records


def read_summary_json(path: Path) -> list[ResultRecord]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "folder_results" not in data:
        raise ResultsError(f"{path} has no 'folder_results': not an inference summary.json")
    records: list[ResultRecord] = []
    for fr in data["folder_results"]:
        folder = str(fr.get("folder", ""))
        for key, res in (fr.get("results") or {}).items():
            file_path = str(res.get("path", key))
            records.append(
                ResultRecord(
                    folder=folder,
                    key=str(key),
                    file_id=str(res.get("file_id") or Path(str(key)).name),
                    path=file_path,
                    machine_type=_str_or_none(res.get("machine_type")) or machine_from_folder(folder),
                    patient_id=_str_or_none(res.get("patient_id")),
                    score=_float_or_none(res.get("score")),
                    status=_str_or_none(res.get("status")),
                    assessment=_str_or_none(res.get("assessment")),
                    skip_reason=None,
                )
            )
        # skipped files: one record per file and reason (first reason wins)
        seen: set[str] = set()
        error_files = (fr.get("error_stats") or {}).get("error_files") or {}
        for reason, paths in error_files.items():
            for p in paths or []:
                p = str(p).split(" (frame ")[0]
                if p in seen:
                    continue
                seen.add(p)
                records.append(
                    ResultRecord(
                        folder=folder,
                        key=_key_from_path(p, folder, Path(p).name),
                        file_id=Path(p).name,
                        path=p,
                        machine_type=machine_from_folder(folder),
                        patient_id=None,
                        score=None,
                        status=None,
                        assessment=None,
                        skip_reason=str(reason),
                    )
                )
    return records


def load_results(results_dir: Path) -> tuple[list[ResultRecord], Path]:
    """Records from ``results.csv`` if present, else ``summary.json``; returns (records, source)."""
    results_dir = Path(results_dir)
    csv_path = results_dir / "results.csv"
    json_path = results_dir / "summary.json"
    if csv_path.is_file():
        return read_results_csv(csv_path), csv_path
    if json_path.is_file():
        return read_summary_json(json_path), json_path
    raise ResultsError(
        f"no results.csv or summary.json in {results_dir}: run `echoquality infer --output {results_dir}` first"
    )


def data_dir_from_run_info(results_dir: Path) -> Path | None:
    """The data folder the inference run read, from ``run_info.json`` when it records one."""
    info = Path(results_dir) / "run_info.json"
    if not info.is_file():
        return None
    try:
        data = json.loads(info.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for getter in (
        lambda d: d.get("data_dir"),
        lambda d: d.get("config", {}).get("inference", {}).get("data_dir"),
    ):
        try:
            value = getter(data)
        except AttributeError:
            value = None
        if value:
            return Path(str(value))
    return None


def resolve_source(record: ResultRecord, data_dir: Path | None) -> Path:
    """Best guess at the file on disk: absolute path, CWD-relative, data_dir-relative, or folder/key."""
    p = Path(record.path)
    candidates = [p]
    if data_dir is not None:
        if not p.is_absolute():
            candidates.append(data_dir / p)
        candidates.append(data_dir / record.folder / record.key)  # data moved since inference
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return candidates[-1]
