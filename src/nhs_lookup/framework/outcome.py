"""One processed case, flattened for storage and reports (picklable, no engine objects)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nhs_lookup.cases import correct_rank
from nhs_lookup.records import Case, LookupResult

NO_MATCH = "NO_MATCH"


@dataclass
class CaseOutcome:
    """What the engine answered for one case, and how it compares with the gold label (if any)."""

    case_index: int  # position in the data set stream (0-based), the resume key
    exam_name: str
    case_id: str | None = None
    data_source: str | None = None
    modality_code: str | None = None
    exam_code: str | None = None
    expected: tuple[str, ...] = ()  # acceptable names; (NO_MATCH,) for a gold no-match; () unlabelled
    predicted: str | None = None  # best catalogue name, None for an explicit no-match
    snomed_id: str | None = None
    modality: str | None = None  # parsed input modality (canonical) or the RIS code
    confidence: float = 0.0
    correct_rank: int | None = None  # 1-based rank of the first acceptable answer; None: absent/unlabelled
    no_match_reason: str | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    split: str = "train"

    @property
    def labelled(self) -> bool:
        return bool(self.expected)

    @property
    def matched(self) -> bool:
        return self.predicted is not None

    def expected_json(self) -> str | None:
        return json.dumps(list(self.expected)) if self.expected else None


def expected_of(case: Case) -> tuple[str, ...]:
    if case.no_match:
        return (NO_MATCH,)
    return tuple(case.acceptable)


def outcome_from_result(
    index: int, case: Case, result: LookupResult, split: str, elapsed_ms: float
) -> CaseOutcome:
    q = case.query
    best = result.best
    return CaseOutcome(
        case_index=index,
        exam_name=q.exam_name,
        case_id=case.case_id,
        data_source=q.data_source,
        modality_code=q.modality_code,
        exam_code=q.exam_code,
        expected=expected_of(case),
        predicted=best.entry.name if best is not None else None,
        snomed_id=best.entry.snomed_id if best is not None else None,
        modality=result.components.modality or q.modality_code,
        confidence=float(result.confidence),
        correct_rank=correct_rank(result, case) if case.labelled else None,
        no_match_reason=result.no_match_reason,
        elapsed_ms=elapsed_ms,
        split=split,
    )


def outcome_from_error(index: int, case: Case, split: str, error: BaseException) -> CaseOutcome:
    q = case.query
    return CaseOutcome(
        case_index=index,
        exam_name=q.exam_name,
        case_id=case.case_id,
        data_source=q.data_source,
        modality_code=q.modality_code,
        exam_code=q.exam_code,
        expected=expected_of(case),
        modality=q.modality_code,
        error=f"{type(error).__name__}: {error}"[:1000],
        split=split,
    )
