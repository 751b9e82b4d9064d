"""Review workflow rules: statuses, mapping identity, auto-flags and queue priority (pure functions).

A *mapping* is one local exam (data source, exam code, exam name) with the engine's proposal and
the reviewers' decisions. Auto-flags send uncertain proposals to the top of the review queue.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from nhs_lookup.records import LookupResult
from nhs_lookup.service.settings import ReviewRules

Status = Literal["unreviewed", "approved", "rejected", "flagged", "deferred", "no_match"]
STATUSES: tuple[str, ...] = ("unreviewed", "approved", "rejected", "flagged", "deferred", "no_match")
NEEDS_REVIEW: frozenset[str] = frozenset({"unreviewed", "flagged", "rejected", "deferred"})
# Queue order: flagged first, then rejected proposals (re-proposed by the engine), fresh ones, deferred last.
STATUS_PRIORITY: dict[str, int] = {
    "flagged": 0,
    "rejected": 1,
    "unreviewed": 2,
    "deferred": 3,
    "approved": 4,
    "no_match": 5,
}

Action = Literal["approve", "choose", "reject", "no_match", "flag", "defer", "reset"]
ACTIONS: tuple[str, ...] = ("approve", "choose", "reject", "no_match", "flag", "defer", "reset")
ACTION_STATUS: dict[str, str] = {
    "approve": "approved",
    "choose": "approved",
    "reject": "rejected",
    "no_match": "no_match",
    "flag": "flagged",
    "defer": "deferred",
    "reset": "unreviewed",
}

# FHIR R4 ConceptMap equivalence codes a reviewer may state for an approved mapping.
Equivalence = Literal["equivalent", "equal", "wider", "subsumes", "narrower", "specializes", "inexact"]

# Confidence bands shown to coders (the origin app's bands).
BANDS: dict[str, tuple[float, float]] = {
    "high": (0.9, 1.01),
    "review": (0.7, 0.9),
    "manual": (0.5, 0.7),
    "low": (0.0, 0.5),
}

# RIS modality codes -> the engine's canonical modality names (Components.modality).
RIS_MODALITY: dict[str, str] = {
    "CT": "CT",
    "MR": "MRI",
    "MRI": "MRI",
    "US": "US",
    "USS": "US",
    "XR": "XR",
    "CR": "XR",
    "DR": "XR",
    "DX": "XR",
    "MG": "MG",
    "MAMM": "MG",
    "MAMMO": "MG",
    "NM": "NM",
    "PET": "PET",
    "PT": "PET",
    "FL": "FL",
    "RF": "FL",
    "XA": "IR",
    "IR": "IR",
    "DEXA": "DEXA",
    "BD": "DEXA",
    "DXA": "DEXA",
}
# Modalities that legitimately share a RIS code (an angiography suite does fluoroscopy, PET is NM).
_COMPATIBLE: tuple[frozenset[str], ...] = (frozenset({"NM", "PET"}), frozenset({"IR", "FL"}))


@dataclass(frozen=True)
class MappingKey:
    """Identity of a local exam. Case and repeated spaces do not make a different exam."""

    data_source: str
    exam_code: str
    exam_name: str

    @classmethod
    def of(cls, data_source: str | None, exam_code: str | None, exam_name: str) -> MappingKey:
        return cls(_norm(data_source), _norm(exam_code), _norm(exam_name))

    @property
    def digest(self) -> str:
        preimage = f"v1|ds:{self.data_source}|ec:{self.exam_code}|en:{self.exam_name}"
        return hashlib.sha256(preimage.encode("utf-8")).hexdigest()


def _norm(value: str | None) -> str:
    return re.sub(r"\s+", " ", (value or "").strip()).casefold()


def canonical_ris_modality(code: str | None) -> str | None:
    if not code:
        return None
    return RIS_MODALITY.get(re.sub(r"[^A-Za-z]", "", code).upper())


def modality_disagrees(ris_code: str | None, target_modality: str | None) -> bool:
    """True when a known RIS code names a different modality than the proposed catalogue row."""
    ris = canonical_ris_modality(ris_code)
    if ris is None or not target_modality:
        return False
    target = target_modality.upper()
    if target == "MR":
        target = "MRI"
    if ris == target:
        return False
    return not any(ris in group and target in group for group in _COMPATIBLE)


def top_margin(result: LookupResult) -> float | None:
    """Score gap between the best and second candidate (None with fewer than two)."""
    scores = [c.score for c in result.candidates]
    if result.best is not None and (not scores or result.candidates[0].entry.name != result.best.entry.name):
        scores.insert(0, result.best.score)
    if len(scores) < 2:
        return None
    return scores[0] - scores[1]


def proposal_flags(result: LookupResult, rules: ReviewRules) -> list[str]:
    """Static auto-flags of one engine proposal (the singleton flag needs all mappings: see db)."""
    flags: list[str] = []
    if result.best is None:
        flags.append("engine_no_match")
    if result.confidence < rules.low_confidence_below:
        flags.append("low_confidence")
    margin = top_margin(result)
    if result.best is not None and (
        result.ambiguous or (margin is not None and margin < rules.ambiguity_margin_below)
    ):
        flags.append("ambiguous")
    if (
        rules.flag_modality_mismatch
        and result.best is not None
        and modality_disagrees(result.query.modality_code, result.best.entry.components.modality)
    ):
        flags.append("modality_mismatch")
    return flags


# Informational flags: shown to the reviewer, but on their own they neither move a proposal to
# 'flagged' nor block bulk approval (in a small upload nearly every row is a singleton).
SOFT_FLAGS: frozenset[str] = frozenset({"singleton"})


def blocking_flags(flags: list[str] | tuple[str, ...]) -> set[str]:
    return set(flags) - SOFT_FLAGS


def auto_status(flags: list[str]) -> str:
    """Status of a mapping nobody has decided on yet: 'flagged' when any non-soft flag is raised."""
    return "flagged" if blocking_flags(flags) else "unreviewed"


def band_of(confidence: float | None) -> str | None:
    if confidence is None:
        return None
    for name, (low, high) in BANDS.items():
        if low <= confidence < high:
            return name
    return None
