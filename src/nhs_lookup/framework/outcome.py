"""One processed case, flattened for storage and reports (picklable, no engine objects).

The record itself is :class:`nhs_lookup.metrics.CaseOutcome` (the one case outcome of the package);
this module builds it from a result or from an error inside the framework's runner.
"""

from __future__ import annotations

from nhs_lookup.metrics import NO_MATCH, CaseOutcome, case_fields, expected_of, outcome_of
from nhs_lookup.records import Case, LookupResult

__all__ = ["NO_MATCH", "CaseOutcome", "expected_of", "outcome_from_error", "outcome_from_result"]


def outcome_from_result(
    index: int, case: Case, result: LookupResult, split: str, elapsed_ms: float
) -> CaseOutcome:
    return outcome_of(case, result, index=index, split=split, elapsed_ms=elapsed_ms)


def outcome_from_error(index: int, case: Case, split: str, error: BaseException) -> CaseOutcome:
    return CaseOutcome(
        **case_fields(case, index, split),
        modality=case.query.modality_code,
        error=f"{type(error).__name__}: {error}"[:1000],
    )
