"""Writing ``training_data/`` from inference results (``echoquality prepare-data``).

``build_training_set`` is the whole workflow: load the results, read human labels, select
(``selection``), merge, pick a review queue, then copy the clips into ``echo_videos/`` and write
``echo_annotations.csv``, ``dataset_analysis.json`` and (optionally) ``review_queue.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echoquality.provenance import package_versions
from echoquality.results_table import ResultRecord
from echoquality.scoring import DEFAULT_THRESHOLD
from echoquality.training.selection import (
    LabelledClip,
    PrepareError,
    Selection,
    SelectionCriteria,
    merge_labels,
    read_labels,
    review_queue,
    select,
)

ANNOTATION_COLUMNS = (
    "video_path",
    "quality_score",
    "filename",
    "machine_type",
    "score",
    "status",
    "assessment",
    "folder",
    "file_id",
    "patient_id",
    "label_source",
    "source_path",
)
OUTPUT_FILES = ("echo_annotations.csv", "dataset_analysis.json", "review_queue.csv")
QUEUE_COLUMNS = ("path", "label", "score", "status", "assessment", "folder", "machine_type", "distance")

QueueRow = tuple[ResultRecord, Path, float]


class PrepareInputError(PrepareError):
    """The options or the inference results cannot be used (the CLI exits 2, not 1)."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower()) or "unknown"


def clip_id(clip: LabelledClip) -> str:
    """Stable id: hash of folder/relative path when known, else of the source path."""
    basis = f"{clip.record.folder}/{clip.record.key}" if clip.record else str(clip.source)
    return hashlib.sha1(basis.encode()).hexdigest()[:10]


@dataclass
class PrepareReport:
    output_dir: Path
    total_samples: int
    high_quality_count: int
    low_quality_count: int
    files_copied: int
    missing_files: list[str] = field(default_factory=list)
    review_queue: Path | None = None


def ensure_writable(output_dir: Path, force: bool) -> None:
    if output_dir.exists() and any(output_dir.iterdir()) and not force:
        raise PrepareInputError(
            f"{output_dir} exists and is not empty; use --force to replace the training set "
            "(echo_videos/ and the annotation files; other files are left alone) or choose --output"
        )


def _relative_or_absolute(p: Path, data_dir: Path | None) -> str:
    if data_dir is not None:
        try:
            return str(p.relative_to(data_dir.resolve()))
        except ValueError:
            pass
    return str(p)


def _annotation_row(clip: LabelledClip, name: str) -> dict[str, Any]:
    r = clip.record
    return {
        "video_path": f"echo_videos/{name}",
        "quality_score": clip.label,
        "filename": name,
        "machine_type": clip.machine_type,
        "score": "" if r is None or r.score is None else f"{r.score:.6f}",
        "status": (r.status if r else "") or "",
        "assessment": (r.assessment if r else "") or "",
        "folder": clip.folder,
        "file_id": r.file_id if r else clip.source.name,
        "patient_id": (r.patient_id if r else "") or "",
        "label_source": clip.label_source,
        "source_path": str(clip.source),
    }


def _copy_clips(clips: list[LabelledClip], videos: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Copy each clip to ``videos/`` under a stable name; (annotation rows, missing sources)."""
    rows, missing = [], []
    index = Counter[str]()
    for clip in clips:
        if not clip.source.is_file():
            missing.append(str(clip.source))
            continue
        prefix = "hq" if clip.label == 1 else "lq"
        name = f"{prefix}_{_slug(clip.machine_type)}_{index[prefix]:04d}_{clip_id(clip)}.dcm"
        try:
            shutil.copy2(clip.source, videos / name)
        except OSError as exc:
            missing.append(f"{clip.source} ({exc})")
            continue
        index[prefix] += 1
        rows.append(_annotation_row(clip, name))
    return rows, missing


def _write_review_queue(path: Path, queue: list[QueueRow], data_dir: Path | None) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(QUEUE_COLUMNS)
        for r, src, dist in queue:
            writer.writerow(
                [
                    _relative_or_absolute(src, data_dir),
                    "",
                    f"{r.score:.6f}",
                    r.status or "",
                    r.assessment or "",
                    r.folder,
                    r.machine_type,
                    f"{dist:.6f}",
                ]
            )
    return path


def _analysis(
    rows: list[dict[str, Any]],
    missing: list[str],
    selection: Selection,
    criteria: SelectionCriteria,
    label_counts: dict[str, int] | None,
    queue: list[QueueRow] | None,
    queue_center: float,
    source: str,
) -> dict[str, Any]:
    """The content of ``dataset_analysis.json``."""
    hq = sum(1 for r in rows if r["quality_score"] == 1)
    return {
        "total_samples": len(rows),
        "high_quality_count": hq,
        "low_quality_count": len(rows) - hq,
        "machine_type_distribution": dict(sorted(Counter(r["machine_type"] for r in rows).items())),
        "label_source_distribution": dict(sorted(Counter(r["label_source"] for r in rows).items())),
        "high_quality_threshold": criteria.hq_threshold,
        "low_quality_threshold": criteria.lq_threshold,
        "max_high_quality": criteria.max_hq,
        "max_low_quality": criteria.max_lq,
        "missing_files": len(missing),
        "missing_file_list": missing,
        "files_copied": len(rows),
        "hq_candidates": selection.hq_candidates,
        "lq_candidates": selection.lq_candidates,
        "hq_over_cap": selection.hq_over_cap,
        "lq_over_cap": selection.lq_over_cap,
        "excluded": selection.excluded,
        "medium_quality_excluded": selection.excluded.get("medium", 0),
        "human_labels": label_counts or {},
        "review_queue": {"size": len(queue), "center": queue_center} if queue is not None else None,
        "seed": criteria.seed,
        "source_summary": source,
        "versions": package_versions(),
    }


def write_training_set(
    clips: list[LabelledClip],
    selection: Selection,
    criteria: SelectionCriteria,
    output_dir: Path,
    *,
    force: bool = False,
    label_counts: dict[str, int] | None = None,
    queue: list[QueueRow] | None = None,
    queue_center: float = DEFAULT_THRESHOLD,
    data_dir: Path | None = None,
    source: str = "",
) -> PrepareReport:
    """Copy the clips into ``echo_videos/`` and write the annotations and the analysis JSON."""
    ensure_writable(output_dir, force)
    videos = output_dir / "echo_videos"
    if force:
        shutil.rmtree(videos, ignore_errors=True)
        for name in OUTPUT_FILES:
            (output_dir / name).unlink(missing_ok=True)
    videos.mkdir(parents=True, exist_ok=True)

    rows, missing = _copy_clips(clips, videos)
    with (output_dir / "echo_annotations.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ANNOTATION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    queue_path = None
    if queue is not None:
        queue_path = _write_review_queue(output_dir / "review_queue.csv", queue, data_dir)
    analysis = _analysis(rows, missing, selection, criteria, label_counts, queue, queue_center, source)
    (output_dir / "dataset_analysis.json").write_text(json.dumps(analysis, indent=2, default=str))
    return PrepareReport(
        output_dir=output_dir,
        total_samples=len(rows),
        high_quality_count=analysis["high_quality_count"],
        low_quality_count=analysis["low_quality_count"],
        files_copied=len(rows),
        missing_files=missing,
        review_queue=queue_path,
    )


# ---------------------------------------------------------------------------- the workflow


@dataclass(frozen=True)
class TrainingSetRequest:
    """Everything ``prepare-data`` is asked to do."""

    results: Path | None  # None: build the set from the human labels alone (needs labels)
    output: Path
    criteria: SelectionCriteria = field(default_factory=SelectionCriteria)
    data_dir: Path | None = None  # None: from the run's run_info.json, else raw_data
    labels: Path | None = None  # human labels CSV (path,label)
    use_pseudo: bool = True
    review_queue_size: int = 0
    review_center: float = DEFAULT_THRESHOLD
    force: bool = False


@dataclass
class TrainingSet:
    """What ``build_training_set`` did: the written set and the numbers behind it."""

    report: PrepareReport
    selection: Selection
    human_labels: int
    label_counts: dict[str, int]
    data_dir: Path


def _load_results(request: TrainingSetRequest) -> tuple[list[ResultRecord], Path]:
    """Check the options and load the inference results; problems raise PrepareInputError."""
    from echoquality.results_table import ResultsError, load_results

    try:
        request.criteria.validate()
    except PrepareError as exc:
        raise PrepareInputError(str(exc)) from exc
    if not request.use_pseudo and request.labels is None:
        raise PrepareInputError("--no-pseudo-labels needs --labels")
    if request.results is None:  # labelled clips only: no inference run needed
        if request.labels is None:
            raise PrepareInputError("give --results (an inference run) or --labels (a path,label CSV)")
        return [], request.labels
    try:
        return load_results(request.results)
    except ResultsError as exc:
        raise PrepareInputError(str(exc)) from exc


def build_training_set(request: TrainingSetRequest) -> TrainingSet:
    """Select, merge with human labels, queue the least certain clips and write the training set.

    Raises :class:`PrepareInputError` for unusable options or results and :class:`PrepareError`
    for unreadable labels or an output folder in use.
    """
    from echoquality.results_table import data_dir_from_run_info

    records, source = _load_results(request)
    from_run = data_dir_from_run_info(request.results) if request.results is not None else None
    ddir = request.data_dir or from_run or Path("raw_data")
    human = read_labels(request.labels, ddir) if request.labels else []
    selection = select(records, request.criteria)
    clips, label_counts = merge_labels(selection, records, human, ddir, use_pseudo=request.use_pseudo)
    queue = None
    if request.review_queue_size > 0:
        labelled = {c.source for c in clips if c.label_source == "human"}
        queue = review_queue(records, request.review_queue_size, request.review_center, labelled, ddir)
    report = write_training_set(
        clips,
        selection,
        request.criteria,
        request.output,
        force=request.force,
        label_counts=label_counts,
        queue=queue,
        queue_center=request.review_center,
        data_dir=ddir,
        source=str(source),
    )
    return TrainingSet(report, selection, len(human), label_counts, ddir)
