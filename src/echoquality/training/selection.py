"""Which scored clips become training examples (``prepare-data``'s rules; pure, no file writing).

A scored clip is high quality (label 1) when ``score >= hq_threshold`` and its status is PASS,
low quality (label 0) when ``score <= lq_threshold`` and its status is FAIL. Nothing else is
consulted, so the thresholds mean what they say (the original also required assessment texts,
which made most threshold values no-ops). Over the caps, clips are sampled with a seed, balanced
across machine types. Human labels (``--labels``) add clips and override pseudo-labels.
``analyze`` runs the same ``select`` as a dry run.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoquality.results_table import ResultRecord, resolve_source


class PrepareError(Exception):
    """A usage problem (bad thresholds, output exists, unreadable labels)."""


@dataclass(frozen=True)
class SelectionCriteria:
    hq_threshold: float = 0.95
    lq_threshold: float = 0.1
    max_hq: int = 800
    max_lq: int = 300
    seed: int = 42

    def validate(self) -> None:
        if not (0.0 <= self.lq_threshold < self.hq_threshold <= 1.0):
            raise PrepareError(
                f"need 0 <= low-quality threshold < high-quality threshold <= 1, got "
                f"{self.lq_threshold} and {self.hq_threshold}"
            )
        if self.max_hq < 0 or self.max_lq < 0:
            raise PrepareError("--max-high-quality/--max-low-quality must be >= 0")


@dataclass
class Selection:
    """Outcome of pseudo-label selection: chosen clips plus counts of everything left out."""

    high: list[ResultRecord]
    low: list[ResultRecord]
    hq_candidates: int
    lq_candidates: int
    excluded: dict[str, int]  # reason -> count

    @property
    def hq_over_cap(self) -> int:
        return self.hq_candidates - len(self.high)

    @property
    def lq_over_cap(self) -> int:
        return self.lq_candidates - len(self.low)


def classify(record: ResultRecord, hq_threshold: float, lq_threshold: float) -> str:
    """'hq', 'lq', or the exclusion reason: skipped | medium | status_conflict."""
    if record.score is None:
        return "skipped"
    status = (record.status or "").upper()
    if record.score >= hq_threshold:
        return "hq" if status == "PASS" else "status_conflict"
    if record.score <= lq_threshold:
        return "lq" if status == "FAIL" else "status_conflict"
    return "medium"


def balanced_sample(records: list[ResultRecord], cap: int, rng: np.random.Generator) -> list[ResultRecord]:
    """Up to *cap* records, spread as evenly as possible over machine types (water-filling).

    Machine types with fewer clips than their share give the rest to the others. Input
    order does not matter: records are sorted first, so the result depends only on the seed.
    """
    ordered = sorted(records, key=lambda r: (r.machine_type, r.folder, r.key))
    if len(ordered) <= cap:
        return ordered
    by_machine: dict[str, list[ResultRecord]] = {}
    for r in ordered:
        by_machine.setdefault(r.machine_type, []).append(r)
    machines = sorted(by_machine, key=lambda m: (len(by_machine[m]), m))
    remaining = cap
    chosen: list[ResultRecord] = []
    for i, m in enumerate(machines):
        share = remaining // (len(machines) - i)
        items = by_machine[m]
        take = min(len(items), share)
        idx = rng.permutation(len(items))[:take]
        chosen += [items[j] for j in sorted(idx)]
        remaining -= take
    return sorted(chosen, key=lambda r: (r.machine_type, r.folder, r.key))


def select(records: list[ResultRecord], criteria: SelectionCriteria) -> Selection:
    """Pseudo-label selection with caps (the dry run ``analyze`` reports uses this too)."""
    criteria.validate()
    hq, lq = [], []
    excluded: Counter[str] = Counter()
    for r in records:
        c = classify(r, criteria.hq_threshold, criteria.lq_threshold)
        if c == "hq":
            hq.append(r)
        elif c == "lq":
            lq.append(r)
        else:
            excluded[c] += 1
    rng = np.random.default_rng(criteria.seed)
    high = balanced_sample(hq, criteria.max_hq, rng)
    low = balanced_sample(lq, criteria.max_lq, rng)
    return Selection(
        high=high, low=low, hq_candidates=len(hq), lq_candidates=len(lq), excluded=dict(excluded)
    )


# ---------------------------------------------------------------------------- human labels


@dataclass(frozen=True)
class HumanLabel:
    path: Path  # resolved absolute path
    label: int


def read_labels(path: Path, data_dir: Path | None) -> list[HumanLabel]:
    """Read ``path,label`` rows (label 1 good / 0 poor; also good/poor, pass/fail, true/false)."""
    if not Path(path).is_file():
        raise PrepareError(f"labels file not found: {path}")
    words = {
        "1": 1,
        "0": 0,
        "good": 1,
        "poor": 0,
        "pass": 1,
        "fail": 0,
        "true": 1,
        "false": 0,
        "hq": 1,
        "lq": 0,
    }
    out: list[HumanLabel] = []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise PrepareError(f"{path} needs the columns path,label (has: {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            raw = (row.get("label") or "").strip().lower()
            if raw == "":
                continue  # an unlabelled review-queue row
            if raw not in words:
                raise PrepareError(f"{path}:{line}: label must be 1/0 (or good/poor), got {row['label']!r}")
            p = Path((row.get("path") or "").strip())
            if not p.is_absolute() and data_dir is not None:
                p = data_dir / p
            out.append(HumanLabel(path=p.resolve(), label=words[raw]))
    return out


@dataclass
class LabelledClip:
    """One row of the training set before copying."""

    source: Path
    label: int
    label_source: str  # pseudo | human
    record: ResultRecord | None  # None for human-labelled clips not in the results

    @property
    def machine_type(self) -> str:
        return self.record.machine_type if self.record else "unknown"

    @property
    def folder(self) -> str:
        return self.record.folder if self.record else self.source.parent.name


def merge_labels(
    selection: Selection,
    records: list[ResultRecord],
    human: list[HumanLabel],
    data_dir: Path | None,
    use_pseudo: bool = True,
) -> tuple[list[LabelledClip], dict[str, int]]:
    """Pseudo-labelled selection plus human labels (human wins); returns clips and counts."""
    by_path = {resolve_source(r, data_dir): r for r in records}
    clips: dict[Path, LabelledClip] = {}
    if use_pseudo:
        for label, chosen in ((1, selection.high), (0, selection.low)):
            for r in chosen:
                src = resolve_source(r, data_dir)
                clips[src] = LabelledClip(src, label, "pseudo", r)
    counts = Counter[str]()
    for h in human:
        rec = by_path.get(h.path)
        if rec is not None and rec.score is None:
            counts["human_labelled_but_skipped_by_inference"] += 1
            continue
        if h.path in clips:
            if clips[h.path].label != h.label:
                counts["pseudo_labels_overridden"] += 1
            else:
                counts["pseudo_labels_confirmed"] += 1
        elif rec is None:
            counts["human_labelled_not_in_results"] += 1
        clips[h.path] = LabelledClip(h.path, h.label, "human", rec)
    counts["human_labels"] = sum(1 for c in clips.values() if c.label_source == "human")
    ordered = sorted(clips.values(), key=lambda c: (-c.label, c.machine_type, c.folder, str(c.source)))
    return ordered, dict(counts)


def review_queue(
    records: list[ResultRecord], n: int, center: float, exclude: set[Path], data_dir: Path | None
) -> list[tuple[ResultRecord, Path, float]]:
    """The *n* scored clips whose score is closest to *center* (the PASS threshold by default)."""
    rows = []
    for r in records:
        if r.score is None:
            continue
        src = resolve_source(r, data_dir)
        if src in exclude:
            continue
        rows.append((r, src, abs(r.score - center)))
    rows.sort(key=lambda t: (t[2], t[0].folder, t[0].key))
    return rows[:n]
