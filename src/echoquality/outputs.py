"""Result records of an inference run and the files they are written to.

The JSON files keep the original tool's schema (``summary.json``, ``<folder>/folder_summary.json``,
``<folder>/inference_results.json``, ``<folder>/<folder>_failed_files.json``) so existing consumers keep
working, with two deliberate changes: results are keyed by the path RELATIVE to the study folder (two
files with one basename no longer collide; ``file_id`` keeps the basename) and skips carry the new reason
codes next to the original six. ``results.csv`` is a flat one-row-per-file view. Every file is written
atomically (temporary file + ``os.replace``) so a killed run never leaves corrupt JSON.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from echoquality.results_schema import ALL_ERROR_KEYS, CSV_COLUMNS, NEW_ERROR_KEYS, ORIGINAL_ERROR_KEYS

__all__ = [
    "ALL_ERROR_KEYS",
    "CSV_COLUMNS",
    "NEW_ERROR_KEYS",
    "ORIGINAL_ERROR_KEYS",
    "FileResult",
    "FolderResult",
    "InferenceSummary",
    "atomic_write_json",
    "atomic_write_text",
    "csv_text",
    "print_summary",
    "write_folder_outputs",
    "write_plots",
    "write_run_outputs",
]


@dataclass
class FileResult:
    """One input file: scored (score/status/assessment set) or skipped (skip_reason set)."""

    folder: str
    key: str  # path relative to the study folder, POSIX separators (unique within the folder)
    file_id: str  # basename
    path: str  # the file as found (data dir as given + key)
    machine_type: str = "unknown"
    manufacturer: str | None = None
    model: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    sop_uid: str | None = None
    num_frames: int | None = None
    fps: float | None = None
    photometric: str | None = None
    transfer_syntax: str | None = None
    score: float | None = None
    status: str | None = None
    assessment: str | None = None
    skip_reason: str | None = None
    skip_detail: str | None = None
    # cache bookkeeping: a cached result is reused only while the file is unchanged
    size: int | None = None
    mtime_ns: int | None = None

    @property
    def scored(self) -> bool:
        return self.score is not None

    def result_entry(self) -> dict[str, Any]:
        """The original ``{score, status, assessment, path}`` object plus the new per-file fields."""
        return {
            "score": self.score,
            "status": self.status,
            "assessment": self.assessment,
            "path": self.path,
            "file_id": self.file_id,
            "machine_type": self.machine_type,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "patient_id": self.patient_id,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "photometric": self.photometric,
            "transfer_syntax": self.transfer_syntax,
        }

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> FileResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class FolderResult:
    """All files of one study folder. ``error`` set means the folder failed as a whole."""

    folder: str
    files: list[FileResult] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        return "failed" if self.error else "success"

    @property
    def scored(self) -> list[FileResult]:
        return [f for f in self.files if f.scored]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if not f.scored]

    @property
    def pass_count(self) -> int:
        return sum(1 for f in self.scored if f.status == "PASS")

    @property
    def fail_count(self) -> int:
        return sum(1 for f in self.scored if f.status == "FAIL")

    @property
    def pass_rate(self) -> float:
        n = len(self.scored)
        return 100.0 * self.pass_count / n if n else 0.0

    def error_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ALL_ERROR_KEYS, 0)
        for f in self.skipped:
            reason = f.skip_reason or "other_errors"
            counts[reason] = counts.get(reason, 0) + 1
        return counts

    def results_object(self) -> dict[str, dict[str, Any]]:
        return {f.key: f.result_entry() for f in sorted(self.scored, key=lambda r: r.key)}

    def summary_object(self) -> dict[str, Any]:
        """``folder_summary.json`` (success or failure variant of the original schema)."""
        if self.error:
            return {
                "folder": self.folder,
                "status": "failed",
                "error": self.error,
                "num_files": 0,
                "pass_count": 0,
                "fail_count": 0,
                "pass_rate": 0.0,
            }
        error_files: dict[str, list[str]] = {k: [] for k in ALL_ERROR_KEYS}
        for f in sorted(self.skipped, key=lambda r: r.key):
            error_files.setdefault(f.skip_reason or "other_errors", []).append(f.path)
        return {
            "folder": self.folder,
            "status": "success",
            "num_files": len(self.files),
            "num_processed": len(self.scored),
            "pass_count": self.pass_count,
            "fail_count": self.fail_count,
            "pass_rate": self.pass_rate,
            "results": self.results_object(),
            "error_stats": {
                "total_files": len(self.files),
                "processed_files": len(self.files),
                "successful_files": len(self.scored),
                "error_counts": self.error_counts(),
                "error_files": error_files,
            },
        }

    def failed_files_object(self) -> dict[str, Any]:
        """``<folder>_failed_files.json``: every skipped file with its reason code and human detail."""
        failed = [
            {
                "filename": f.file_id,
                "key": f.key,
                "path": f.path,
                "reasons": [f.skip_reason or "other_errors"],
                "detail": f.skip_detail or "",
            }
            for f in sorted(self.skipped, key=lambda r: r.key)
        ]
        return {"folder": self.folder, "total_failed_files": len(failed), "failed_files": failed}


@dataclass
class InferenceSummary:
    """What a run produced; ``summary_object()`` is ``summary.json``."""

    output_dir: Path
    folders: list[FolderResult]
    threshold: float
    weights_path: Path
    weights_sha256: str
    weights_is_reference: bool
    weights_note: str | None
    device: str
    newly_scored: int = 0  # files preprocessed + scored (or newly skipped) in this run
    reused: int = 0  # files taken from the cache of an earlier run
    elapsed_s: float = 0.0
    scoring_s: float = 0.0  # wall time of the decode + forward loop alone
    scored_this_run: int = 0

    @property
    def files(self) -> list[FileResult]:
        return [f for folder in self.folders for f in folder.files]

    @property
    def total_files(self) -> int:
        return sum(len(f.files) for f in self.folders)

    @property
    def total_processed(self) -> int:
        return sum(len(f.scored) for f in self.folders)

    @property
    def total_pass(self) -> int:
        return sum(f.pass_count for f in self.folders)

    @property
    def total_fail(self) -> int:
        return sum(f.fail_count for f in self.folders)

    @property
    def overall_pass_rate(self) -> float:
        n = self.total_processed
        return 100.0 * self.total_pass / n if n else 0.0

    def summary_object(self) -> dict[str, Any]:
        return {
            "total_folders": len(self.folders),
            "successful_folders": sum(1 for f in self.folders if not f.error),
            "failed_folders": sum(1 for f in self.folders if f.error),
            "total_files": self.total_files,
            "total_processed": self.total_processed,
            "total_pass": self.total_pass,
            "total_fail": self.total_fail,
            "overall_pass_rate": self.overall_pass_rate,
            "threshold": self.threshold,
            "folder_results": [f.summary_object() for f in self.folders],
        }


# --------------------------------------------------------------------------- atomic writers


def atomic_write_text(path: Path, text: str) -> None:
    """Write *text* to *path* via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def csv_text(rows: Iterable[FileResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        d = r.to_state()
        writer.writerow({c: "" if d.get(c) is None else d.get(c) for c in CSV_COLUMNS})
    return buf.getvalue()


def write_folder_outputs(out_dir: Path, folder: FolderResult) -> None:
    """The three per-folder JSON files of the original tool."""
    d = Path(out_dir) / folder.folder
    atomic_write_json(d / "folder_summary.json", folder.summary_object())
    if not folder.error:
        atomic_write_json(d / "inference_results.json", folder.results_object())
        atomic_write_json(d / f"{folder.folder}_failed_files.json", folder.failed_files_object())


def write_run_outputs(summary: InferenceSummary, *, write_csv: bool = True) -> None:
    """``summary.json``, the per-folder files and ``results.csv``."""
    for folder in summary.folders:
        write_folder_outputs(summary.output_dir, folder)
    atomic_write_json(summary.output_dir / "summary.json", summary.summary_object())
    if write_csv:
        rows = sorted(summary.files, key=lambda r: (r.folder, r.key))
        atomic_write_text(summary.output_dir / "results.csv", csv_text(rows))


# --------------------------------------------------------------------------- plots


def _save_png(fig: Any, path: Path, threshold: float) -> None:
    """Save atomically; the threshold goes into the PNG text chunk so it can be checked later."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"threshold": f"{threshold:g}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.getvalue())
    os.replace(tmp, path)


def score_histogram(scores: Sequence[float], threshold: float, title: str) -> Any:
    """20-bin histogram on [0, 1] with a dashed line at the threshold actually used."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    ax.hist(list(scores), bins=20, range=(0.0, 1.0), color="#4C72B0", edgecolor="white")
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold = {threshold:g}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("quality score")
    ax.set_ylabel("files")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.subplots_adjust(
        left=0.09, right=0.97, top=0.92, bottom=0.11
    )  # fixed margins: faster than tight_layout
    return fig


def pass_fail_chart(pass_count: int, fail_count: int, threshold: float, title: str) -> Any:
    """Pie chart of PASS (green) vs FAIL (red)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.pie(
        [pass_count, fail_count],
        labels=[f"PASS ({pass_count})", f"FAIL ({fail_count})"],
        colors=["#4CAF50", "#F44336"],
        autopct="%1.1f%%",
        startangle=90,
    )
    ax.set_title(f"{title} (threshold {threshold:g})")
    return fig


def write_plots(summary: InferenceSummary) -> list[Path]:
    """Per folder and overall: ``score_distribution.png`` and ``pass_fail_distribution.png``."""
    written: list[Path] = []
    groups: list[tuple[Path, str, list[FileResult]]] = [
        (summary.output_dir / f.folder, f.folder, f.scored) for f in summary.folders if f.scored
    ]
    all_scored = [r for f in summary.folders for r in f.scored]
    if all_scored:
        groups.append((summary.output_dir, "all folders", all_scored))
    for directory, title, rows in groups:
        scores = [float(r.score) for r in rows if r.score is not None]
        n_pass = sum(1 for r in rows if r.status == "PASS")
        hist = directory / "score_distribution.png"
        _save_png(
            score_histogram(scores, summary.threshold, f"Quality scores - {title}"), hist, summary.threshold
        )
        pie = directory / "pass_fail_distribution.png"
        _save_png(
            pass_fail_chart(n_pass, len(rows) - n_pass, summary.threshold, f"Pass/fail - {title}"),
            pie,
            summary.threshold,
        )
        written += [hist, pie]
    return written


# --------------------------------------------------------------------------- console


def print_summary(summary: InferenceSummary, console: Any) -> None:
    """Per-folder table (processed/files, pass rate, skipped by reason) and the closing summary block."""
    from rich.table import Table

    table = Table(title="Per-folder results", show_lines=False)
    table.add_column("", width=1)
    table.add_column("folder")
    table.add_column("processed/files", justify="right")
    table.add_column("pass rate", justify="right")
    table.add_column("skipped (by reason)")
    for f in summary.folders:
        if f.error:
            table.add_row("[red]✗[/]", f.folder, "0/0", "-", f"[red]{f.error}[/]")
            continue
        skipped = ", ".join(f"{k}: {v}" for k, v in f.error_counts().items() if v)
        mark = "[green]✓[/]" if f.scored else "[yellow]✓[/]"
        rate = f"{f.pass_rate:.1f}%" if f.scored else "-"
        table.add_row(mark, f.folder, f"{len(f.scored)}/{len(f.files)}", rate, skipped or "-")
    console.print(table)
    console.rule("[bold]ECHO QUALITY INFERENCE SUMMARY")
    s = summary.summary_object()
    console.print(
        f"Folders: {s['total_folders']} ({s['successful_folders']} ok, {s['failed_folders']} failed)   "
        f"Files: {s['total_files']}   Scored: {s['total_processed']}   "
        f"PASS: {s['total_pass']}   FAIL: {s['total_fail']}   "
        f"Pass rate: {s['overall_pass_rate']:.1f}% (threshold {summary.threshold:g})"
    )
    console.print(
        f"Processed this run: {summary.newly_scored} ({summary.scored_this_run} scored)   reused from earlier runs: {summary.reused}   "
        f"device: {summary.device}   time: {summary.elapsed_s:.1f} s"
    )
    console.print(f"Results: {summary.output_dir}")
