"""The clips of one inference run as the review pages see them: typed, filtered, sorted, paged.

Built once from the run's results (``results_table.load_results``). Patient identifiers never leave
this module by default: folders (often named ``<machine>-<PatientID>``) are shown under a stable alias
(``epiq7c-F0001``) and any patient ID found in a file's key is masked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from echoquality.results_table import (
    ResultRecord,
    data_dir_from_run_info,
    load_results,
    resolve_source,
)
from echoquality.scoring import DEFAULT_THRESHOLD, status_for

STATUSES = ("PASS", "FAIL", "SKIPPED")
LABELS = ("good", "poor", "unsure")
LABEL_STATES = ("unlabelled", "labelled", *LABELS)
SORTS = ("uncertainty", "score_asc", "score_desc", "folder")
REDACTED = "[id]"


@dataclass(frozen=True)
class Clip:
    """One file of the run. ``folder_label``/``key_label`` are what pages and exports show."""

    id: str  # opaque, stable: sha1 of folder/key
    folder: str
    key: str
    folder_label: str
    key_label: str
    machine_type: str
    score: float | None
    status: str  # PASS | FAIL | SKIPPED
    assessment: str | None
    skip_reason: str | None
    uncertainty: float | None  # |score - threshold|; None for skipped files
    record: ResultRecord = field(repr=False, compare=False)
    data_dir: Path | None = field(default=None, repr=False, compare=False)

    @cached_property
    def source(self) -> Path:
        """The file on disk (best guess, may be missing); resolved on first use, not at start-up."""
        return resolve_source(self.record, self.data_dir)


@dataclass
class ClipQuery:
    """Gallery filters, sort and page (validated by the routes)."""

    status: str = ""
    band: str = ""
    machine: str = ""
    folder: str = ""  # folder label
    skip: str = ""
    label: str = ""  # one of LABEL_STATES
    sort: str = "uncertainty"
    page: int = 1
    per_page: int = 60


@dataclass
class Page:
    clips: list[Clip]
    total: int
    page: int
    pages: int


@dataclass
class Catalog:
    """Every clip of the run, indexed by id, with the facets the gallery filters on."""

    clips: list[Clip]
    threshold: float
    results_dir: Path
    data_dir: Path | None
    identifiers: frozenset[str] = field(default=frozenset(), repr=False)
    by_id: dict[str, Clip] = field(init=False, repr=False)
    _facets: dict[str, list[str]] = field(init=False, repr=False)
    _sorted: dict[str, list[Clip]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.clips}
        self._facets = {
            "band": sorted({c.assessment for c in self.clips if c.assessment}),
            "machine": sorted({c.machine_type for c in self.clips}),
            "folder": sorted({c.folder_label for c in self.clips}),
            "skip": sorted({c.skip_reason for c in self.clips if c.skip_reason}),
        }

    def facets(self) -> dict[str, list[str]]:
        """Distinct values for the filter menus (the run does not change while served)."""
        return self._facets

    def ordered(self, sort: str) -> list[Clip]:
        """The clips in *sort* order, sorted once and kept (a 10,000-file gallery page only filters)."""
        if sort not in self._sorted:
            self._sorted[sort] = sorted(self.clips, key=_sort_key(sort))
        return self._sorted[sort]

    def query(self, q: ClipQuery, labels: dict[str, str]) -> Page:
        """Filter, sort and page; *labels* maps clip id -> current label."""
        rows = [c for c in self.ordered(q.sort) if _matches(c, q, labels)]
        pages = max(1, -(-len(rows) // q.per_page))
        page = min(max(q.page, 1), pages)
        start = (page - 1) * q.per_page
        return Page(rows[start : start + q.per_page], len(rows), page, pages)

    def most_uncertain(self, labels: dict[str, str], exclude: Iterable[str] = ()) -> Clip | None:
        """The unlabelled scored clip closest to the threshold (ties: folder, key)."""
        skip = set(exclude)
        for c in self.ordered("uncertainty"):
            if c.uncertainty is None:
                return None  # skipped files sort last
            if c.id not in labels and c.id not in skip:
                return c
        return None

    def redact(self, text: str) -> str:
        """*text* with every known patient identifier masked (for free text built from paths)."""
        if not self.identifiers:
            return text
        if self._pattern is None:
            alternatives = sorted(self.identifiers, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(i) for i in alternatives))
        return self._pattern.sub(REDACTED, text)

    _pattern: re.Pattern[str] | None = field(init=False, repr=False, default=None)


def _matches(c: Clip, q: ClipQuery, labels: dict[str, str]) -> bool:
    if q.status and c.status != q.status:
        return False
    if q.band and c.assessment != q.band:
        return False
    if q.machine and c.machine_type != q.machine:
        return False
    if q.folder and c.folder_label != q.folder:
        return False
    if q.skip and c.skip_reason != q.skip:
        return False
    if q.label:
        current = labels.get(c.id)
        if q.label == "unlabelled":
            return current is None
        if q.label == "labelled":
            return current is not None
        return current == q.label
    return True


def _sort_key(sort: str):
    far = float("inf")
    if sort == "score_asc":
        return lambda c: (c.score is None, c.score if c.score is not None else far, c.folder, c.key)
    if sort == "score_desc":
        return lambda c: (c.score is None, -(c.score or 0.0), c.folder, c.key)
    if sort == "folder":
        return lambda c: (c.folder_label, c.key_label)
    return lambda c: (
        c.uncertainty is None,
        c.uncertainty if c.uncertainty is not None else far,
        c.folder,
        c.key,
    )


def clip_id(folder: str, key: str) -> str:
    return hashlib.sha1(f"{folder}/{key}".encode()).hexdigest()[:16]


def _mask(text: str, identifiers: frozenset[str]) -> str:
    for ident in sorted(identifiers, key=len, reverse=True):
        if ident and ident in text:
            text = text.replace(ident, REDACTED)
    return text


def folder_identifiers(records: list[ResultRecord]) -> frozenset[str]:
    """Patient IDs recorded for the files, plus each folder's suffix after the machine prefix
    (``epiq7c-SYN0001`` -> ``SYN0001``, the DICOM organiser's naming)."""
    out = {r.patient_id for r in records if r.patient_id and len(r.patient_id) >= 3}
    out |= {
        r.folder.split("-", 1)[1] for r in records if "-" in r.folder and len(r.folder.split("-", 1)[1]) >= 3
    }
    return frozenset(out)


def own_ids(r: ResultRecord) -> frozenset[str]:
    """The identifiers a file's own key may contain: its patient ID and its folder's suffix."""
    suffix = r.folder.split("-", 1)[1] if "-" in r.folder else ""
    return frozenset(i for i in (r.patient_id or "", suffix) if len(i) >= 3)


def folder_aliases(folders: Iterable[str], machine_of: dict[str, str]) -> dict[str, str]:
    """``<machine>-F0001``... in sorted folder order (stable while the run's folders stay the same)."""
    return {f: f"{machine_of.get(f, 'folder')}-F{i:04d}" for i, f in enumerate(sorted(set(folders)), start=1)}


def read_threshold(results_dir: Path) -> float:
    """The threshold the run used (summary.json, then run_info.json), else the configured default."""
    for name in ("summary.json", "run_info.json"):
        p = Path(results_dir) / name
        try:
            value = json.loads(p.read_text()).get("threshold")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
            return float(value)
    return DEFAULT_THRESHOLD


def build_catalog(
    results_dir: Path, data_dir: Path | None = None, *, show_identifiers: bool = False
) -> Catalog:
    """Load the run in *results_dir* (raises ``results_table.ResultsError`` when there is none)."""
    results_dir = Path(results_dir)
    records, _ = load_results(results_dir)
    data_dir = data_dir or data_dir_from_run_info(results_dir)
    threshold = read_threshold(results_dir)
    idents = frozenset() if show_identifiers else folder_identifiers(records)
    machine_of = {r.folder: r.machine_type for r in records}
    aliases = {f: f for f in machine_of} if show_identifiers else folder_aliases(machine_of, machine_of)
    clips = []
    for r in records:
        status = (r.status or status_for(r.score, threshold)) if r.score is not None else "SKIPPED"
        clips.append(
            Clip(
                id=clip_id(r.folder, r.key),
                folder=r.folder,
                key=r.key,
                folder_label=aliases[r.folder],
                key_label=_mask(r.key, own_ids(r)) if idents else r.key,
                machine_type=r.machine_type,
                score=r.score,
                status=status,
                assessment=r.assessment,
                skip_reason=r.skip_reason,
                uncertainty=None if r.score is None else abs(r.score - threshold),
                record=r,
                data_dir=data_dir,
            )
        )
    return Catalog(clips, threshold, results_dir, data_dir, idents)


def preprocess_config_of_run(results_dir: Path):
    """The run's preprocessing settings (``run_info.json`` ``config.preprocess``), else the defaults, so
    the review shows the input the model actually saw."""
    from echoquality.config import PreprocessConfig, config_from_dict

    try:
        data = json.loads((Path(results_dir) / "run_info.json").read_text()).get("config")
        return config_from_dict(data).preprocess if isinstance(data, dict) else PreprocessConfig()
    except (OSError, ValueError, TypeError, AttributeError):
        return PreprocessConfig()
