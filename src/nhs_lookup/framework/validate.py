"""``nhs-lookup validate``: the sanity check on a labelled case set, with a CI gate.

Metrics (all from the engine's own answers; ``cases.correct_rank`` judges gold):
- top-1 / top-5 accuracy and MRR;
- modality extraction accuracy: the parsed input modality against the RIS ``MODALITY_CODE`` mapped to
  the same canonical codes (MR -> MRI, Mamm -> MG, ...), over cases whose code maps to a modality;
- laterality / contrast agreement between the parsed input and the chosen catalogue row, over matched
  cases: a stated value must be equal; an unstated laterality agrees with an unlateralised or bilateral
  row, an unstated contrast with a row without a contrast qualifier (the gold-labelling rules);
- preprocessing consistency: labelled cases grouped by their first acceptable answer; within each group
  of two or more differently written names, the mean share of components (modality, anatomy,
  laterality, contrast, technique) that agree over all pairs; averaged over groups;
- overall validation score = 0.5 top-1 + 0.1 top-5 + 0.1 modality + 0.1 laterality + 0.1 contrast
  + 0.1 consistency (a missing metric is left out and the weights renormalised).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nhs_lookup.metrics import CaseOutcome, group_stats, outcome_of
from nhs_lookup.records import Case, CaseError, Components, LookupResult
from nhs_lookup.vocab import default_vocabulary

SCORE_WEIGHTS = {
    "top1": 0.5,
    "top5": 0.1,
    "modality_accuracy": 0.1,
    "laterality_agreement": 0.1,
    "contrast_agreement": 0.1,
    "preprocessing_consistency": 0.1,
}
COMPONENT_FIELDS = ("modality", "anatomy", "laterality", "contrast", "technique")

# Fallback when the engine's vocabulary exposes no RIS code map.
_RIS_MODALITY = {
    "XR": "XR", "CR": "XR", "DR": "XR", "DX": "XR", "XRAY": "XR",
    "CT": "CT",
    "MR": "MRI", "MRI": "MRI",
    "US": "US", "USS": "US",
    "MAMM": "MG", "MAMMO": "MG", "MG": "MG",
    "NM": "NM", "PET": "PET", "PT": "PET",
    "FL": "FL", "RF": "FL", "FLUORO": "FL",
    "XA": "IR", "IR": "IR", "ANGIO": "IR",
    "DEXA": "DEXA", "BD": "DEXA", "BMD": "DEXA",
}  # fmt: skip


def ris_modality(code: str | None) -> str | None:
    """Canonical modality for a RIS modality code (the engine's vocabulary first, else our table)."""
    if not code:
        return None
    mapped = default_vocabulary().modality_of_code(code)
    if mapped:
        return mapped
    return _RIS_MODALITY.get("".join(ch for ch in code.upper() if ch.isalnum()))


@dataclass
class ValidationFailure:
    case_id: str | None
    exam_name: str
    data_source: str | None
    modality_code: str | None
    expected: str  # first acceptable name or NO_MATCH
    predicted: str | None
    confidence: float
    rank: int | None  # rank of the first acceptable answer, None if absent from the candidates


@dataclass
class ValidationReport:
    cases: int
    labelled: int
    top1: float | None
    top5: float | None
    mrr: float | None
    modality_accuracy: float | None
    modality_cases: int
    modality_by_code: dict[str, dict[str, Any]]
    laterality_agreement: float | None
    contrast_agreement: float | None
    agreement_cases: int
    preprocessing_consistency: float | None
    consistency_groups: int
    overall_score: float | None
    min_accuracy: float
    failures: list[ValidationFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.top1 is not None and self.top1 >= self.min_accuracy

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["score_formula"] = " + ".join(f"{w} {k}" for k, w in SCORE_WEIGHTS.items())
        return d


def _laterality_agrees(query: Components, row: Components) -> bool:
    if query.laterality is None:
        return row.laterality in (None, "bilateral")
    return query.laterality == row.laterality


def _contrast_agrees(query: Components, row: Components) -> bool:
    return query.contrast == row.contrast


def component_agreement(a: Components, b: Components) -> float:
    """Share of the five components on which two parses agree (sets compared as sets)."""
    same = 0
    for f in COMPONENT_FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, tuple | list):
            x, y = frozenset(x), frozenset(y)
        same += x == y
    return same / len(COMPONENT_FIELDS)


def preprocessing_consistency(
    cases: Sequence[Case], parsed: Sequence[Components]
) -> tuple[float | None, int]:
    """Mean within-group component agreement; groups = labelled cases sharing a first acceptable answer."""
    groups: dict[str, dict[str, Components]] = defaultdict(dict)
    for case, comp in zip(cases, parsed, strict=True):
        if case.acceptable:
            groups[case.acceptable[0].casefold()].setdefault(case.query.exam_name.strip().casefold(), comp)
    scores = []
    for members in groups.values():
        if len(members) < 2:
            continue
        pairs = list(itertools.combinations(members.values(), 2))
        scores.append(sum(component_agreement(a, b) for a, b in pairs) / len(pairs))
    return (sum(scores) / len(scores) if scores else None), len(scores)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def overall_score(metrics: dict[str, float | None]) -> float | None:
    present = {k: w for k, w in SCORE_WEIGHTS.items() if metrics.get(k) is not None}
    if not present:
        return None
    total = sum(present.values())
    return sum(w * float(metrics[k]) for k, w in present.items()) / total  # type: ignore[arg-type]


def _failure(case: Case, o: CaseOutcome) -> ValidationFailure:
    q = case.query
    return ValidationFailure(
        case_id=case.case_id,
        exam_name=q.exam_name,
        data_source=q.data_source,
        modality_code=q.modality_code,
        expected="NO_MATCH" if case.no_match else case.acceptable[0],
        predicted=o.predicted,
        confidence=round(o.confidence, 4),
        rank=o.rank,
    )


def _modality_extraction(
    cases: Sequence[Case], results: Sequence[LookupResult]
) -> tuple[int, int, dict[str, dict[str, Any]]]:
    """(cases with a mappable RIS code, correct, per-code table)."""
    total = ok_n = 0
    by_code: dict[str, dict[str, Any]] = {}
    for case, result in zip(cases, results, strict=True):
        expected_mod = ris_modality(case.query.modality_code)
        if expected_mod is None:
            continue
        total += 1
        ok = result.components.modality == expected_mod
        ok_n += ok
        entry = by_code.setdefault(
            case.query.modality_code or "", {"canonical": expected_mod, "cases": 0, "correct": 0}
        )
        entry["cases"] += 1
        entry["correct"] += ok
    for entry in by_code.values():
        entry["accuracy"] = round(entry["correct"] / entry["cases"], 4)
    return total, ok_n, dict(sorted(by_code.items()))


def validate_results(
    cases: Sequence[Case], results: Sequence[LookupResult], min_accuracy: float
) -> ValidationReport:
    """Compute the validation report from the engine's results (pure)."""
    outcomes = [outcome_of(c, r, i) for i, (c, r) in enumerate(zip(cases, results, strict=True))]
    stats = group_stats(outcomes)
    failures = [_failure(c, o) for c, o in zip(cases, outcomes, strict=True) if c.labelled and o.rank != 1]
    mod_total, mod_ok, by_code = _modality_extraction(cases, results)
    matched = [r for r in results if r.best is not None]
    lat_ok = sum(_laterality_agrees(r.components, r.best.entry.components) for r in matched)  # type: ignore[union-attr]
    con_ok = sum(_contrast_agrees(r.components, r.best.entry.components) for r in matched)  # type: ignore[union-attr]
    consistency, n_groups = preprocessing_consistency(cases, [r.components for r in results])
    metrics = {
        "top1": stats.top1_accuracy,
        "top5": stats.top5_accuracy,
        "modality_accuracy": _ratio(mod_ok, mod_total),
        "laterality_agreement": _ratio(lat_ok, len(matched)),
        "contrast_agreement": _ratio(con_ok, len(matched)),
        "preprocessing_consistency": consistency,
    }
    return ValidationReport(
        cases=len(cases),
        labelled=stats.labelled,
        top1=metrics["top1"],
        top5=metrics["top5"],
        mrr=stats.mrr,
        modality_accuracy=metrics["modality_accuracy"],
        modality_cases=mod_total,
        modality_by_code=by_code,
        laterality_agreement=metrics["laterality_agreement"],
        contrast_agreement=metrics["contrast_agreement"],
        agreement_cases=len(matched),
        preprocessing_consistency=consistency,
        consistency_groups=n_groups,
        overall_score=overall_score(metrics),
        min_accuracy=min_accuracy,
        failures=failures,
    )


# -- workflow ----------------------------------------------------------------------------------------
@dataclass
class ValidateOptions:
    """What ``nhs-lookup validate`` needs (the command only parses these and prints the run)."""

    paths: list[Path]
    catalogue: str | None = None
    config_path: Path | None = None
    min_accuracy: float = 0.8
    model: Path | None = None  # model file from ``nhs-lookup fit``
    force_model: bool = False


@dataclass
class ValidateRun:
    report: ValidationReport
    errors: list[CaseError]


def build_engine(
    catalogue: str | None, config_path: Path | None, model: Path | None = None, force_model: bool = False
) -> Any:
    """The engine a workflow runs: from a model file when given, else config + catalogue.
    Raises ``ValueError`` (a model for another catalogue, a bad config)."""
    if model is not None:
        from nhs_lookup.learning.model import load_engine

        return load_engine(model, catalogue, force=force_model)[0]
    from nhs_lookup.config import load_config
    from nhs_lookup.engine import LookupEngine

    return LookupEngine.load(load_config(config_path), catalogue_path=catalogue)


def run(opts: ValidateOptions) -> ValidateRun:
    """Read the labelled set, run the engine, judge. Raises ``CaseFileError`` / ``ValueError``."""
    from nhs_lookup.cases import load_cases

    cases, errors = load_cases(opts.paths)
    if not cases:
        raise ValueError("the sanity set has no readable cases")
    engine = build_engine(opts.catalogue, opts.config_path, opts.model, opts.force_model)
    results = engine.lookup_many([c.query for c in cases])
    return ValidateRun(validate_results(cases, results, opts.min_accuracy), errors)
