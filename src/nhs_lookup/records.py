"""Typed records that cross module boundaries in the lookup engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExamQuery:
    """One exam as a RIS exports it. Only ``exam_name`` is required."""

    exam_name: str
    modality_code: str | None = None
    exam_code: str | None = None
    data_source: str | None = None


@dataclass
class Components:
    """What an exam name says, parsed the same way for inputs and catalogue rows."""

    modality: str | None = None  # canonical: XR CT MRI US NM PET MG FL IR DEXA ... or None
    anatomy: tuple[str, ...] = ()  # canonical body parts (hierarchical vocabulary)
    laterality: str | None = None  # left | right | bilateral | None (unstated)
    contrast: str | None = None  # with | without | with_and_without | oral | None (unstated)
    technique: tuple[str, ...] = ()  # angiography, doppler, hrct, views, ...
    interventional: bool = False
    non_clinical: str | None = None  # reason when the entry is administrative (did_not_attend, ...)
    clean_text: str = ""  # normalised text used for lexical/semantic matching

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CatalogueEntry:
    """One catalogue row. Rows sharing a SNOMED concept but differing in laterality stay distinct."""

    row_id: int
    name: str  # primary_source_name / NICIP short name / RadLex short name
    snomed_id: str | None = None
    fsn: str | None = None
    laterality_id: str | None = None
    laterality_fsn: str | None = None
    nicip_code: str | None = None
    is_diagnostic: bool = True
    is_interventional: bool = False
    source: str = "nhs"  # nhs | nicip | radlex | sample
    components: Components = field(default_factory=Components)


@dataclass
class Candidate:
    """A scored catalogue row for one query."""

    entry: CatalogueEntry
    score: float
    component_scores: dict[str, float] = field(default_factory=dict)
    semantic_score: float = 0.0
    notes: tuple[str, ...] = ()  # human-readable reasons (bonuses, penalties, constraints)

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "name": e.name,
            "nicip_code": e.nicip_code,
            "snomed_id": e.snomed_id,
            "fsn": e.fsn,
            "laterality": e.laterality_fsn,
            "score": round(self.score, 4),
            "semantic_score": round(self.semantic_score, 4),
            "component_scores": {k: round(v, 4) for k, v in self.component_scores.items()},
            "notes": list(self.notes),
        }


@dataclass
class LookupResult:
    """The engine's answer for one query."""

    query: ExamQuery
    components: Components
    best: Candidate | None  # None means an explicit no-match
    confidence: float  # in [0, 1]
    candidates: list[Candidate] = field(default_factory=list)  # ranked alternatives (best first)
    ambiguous: bool = False
    no_match_reason: str | None = None  # non_clinical | not_in_catalogue | low_confidence | ...
    explanation: str = ""
    elapsed_ms: float = 0.0
    score: float = 0.0  # raw top score before calibration (calibration maps it to ``confidence``)
    review_reason: str | None = None  # why a person should check this answer (e.g. modality_only)

    @property
    def matched(self) -> bool:
        return self.best is not None

    def to_dict(self) -> dict[str, Any]:
        b = self.best
        return {
            "data_source": self.query.data_source,
            "modality_code": self.query.modality_code,
            "exam_code": self.query.exam_code,
            "exam_name": self.query.exam_name,
            "matched": self.matched,
            "clean_name": b.entry.name if b else None,
            "nicip_code": b.entry.nicip_code if b else None,
            "snomed": {
                "found": b is not None,
                "id": b.entry.snomed_id if b else None,
                "fsn": b.entry.fsn if b else None,
                "laterality_concept_id": b.entry.laterality_id if b else None,
                "laterality_fsn": b.entry.laterality_fsn if b else None,
            },
            "confidence": round(self.confidence, 4),
            "ambiguous": self.ambiguous,
            "no_match_reason": self.no_match_reason,
            "review_reason": self.review_reason,
            "score": round(self.score, 4),
            "explanation": self.explanation,
            "components": self.components.to_dict(),
            "all_candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class Case:
    """One input case, optionally gold-labelled (``acceptable`` names, or an expected no-match)."""

    query: ExamQuery
    case_id: str | None = None
    acceptable: tuple[str, ...] = ()  # catalogue names a careful coder accepts, best first
    no_match: bool = False  # gold says no catalogue row is acceptable
    no_match_reason: str | None = None  # non_clinical | not_in_catalogue

    @property
    def labelled(self) -> bool:
        return bool(self.acceptable) or self.no_match


@dataclass(frozen=True)
class CaseError:
    """A row of a case file that could not be read (reported, never fatal)."""

    source: str
    row: int  # 1-based row number (JSON list index + 1, or CSV data line number)
    message: str
    kind: str = "invalid_row"  # groups errors in summaries: missing_name, name_too_long, wrong_type, ...


# Columns of a flat (CSV) mapping result; the input fields come first so the file reads back as cases.
# One column set for every per-exam table a coder triages: the ``nhs-lookup batch`` CSV, a web
# job's results CSV and (plus review columns) the web app's mapping export. Documented in
# docs/nhs_lookup_service.md ("Output columns").
RESULT_COLUMNS = (
    "data_source",
    "modality_code",
    "exam_code",
    "exam_name",
    "status",  # batch / job results: proposed | no_match; mapping export: the review status
    "proposed_name",  # the catalogue row proposed (or approved); empty for a no-match
    "snomed_id",
    "snomed_fsn",
    "laterality_fsn",
    "confidence",  # calibrated probability that proposed_name is right; empty for a no-match
    "needs_review",  # true when any flag other than an informational one is raised
    "flags",  # flag names joined by '|'
    "flag_reasons",  # 'flag: reason' for each flag, joined by '; '
    "no_match_reason",
)

# Why each review flag is raised (the service's auto-flags; thresholds are its review rules).
FLAG_REASONS: dict[str, str] = {
    "engine_no_match": "the engine found no acceptable catalogue row",
    "low_confidence": "confidence below the review threshold",
    "ambiguous": "the best two candidates score almost the same",
    "modality_mismatch": "the RIS modality code disagrees with the proposed row's modality",
    "singleton": "the only local name mapped to this row (informational)",
}
INFORMATIONAL_FLAGS: frozenset[str] = frozenset({"singleton"})


def flag_cells(flags: Sequence[str]) -> dict[str, Any]:
    """The ``needs_review``, ``flags`` and ``flag_reasons`` cells of one row."""
    return {
        "needs_review": any(f not in INFORMATIONAL_FLAGS for f in flags),
        "flags": "|".join(flags),
        "flag_reasons": "; ".join(f"{f}: {FLAG_REASONS.get(f, f)}" for f in flags),
    }


def flatten_result(result: dict[str, Any]) -> dict[str, Any]:
    """One CSV row (``RESULT_COLUMNS``) from ``LookupResult.to_dict()`` output (or its stored JSON),
    with its review ``flags`` when the dict carries them."""
    snomed = result.get("snomed") or {}
    matched = bool(result.get("matched"))
    return {
        "data_source": result.get("data_source") or "",
        "modality_code": result.get("modality_code") or "",
        "exam_code": result.get("exam_code") or "",
        "exam_name": result.get("exam_name") or "",
        "status": "proposed" if matched else "no_match",
        "proposed_name": result.get("clean_name") or "",
        "snomed_id": snomed.get("id") or "",
        "snomed_fsn": snomed.get("fsn") or "",
        "laterality_fsn": snomed.get("laterality_fsn") or "",
        "confidence": result.get("confidence", "") if matched else "",
        **flag_cells(list(result.get("flags") or [])),
        "no_match_reason": result.get("no_match_reason") or "",
    }
