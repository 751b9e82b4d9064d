"""Evaluation against gold-labelled cases: top-1 / top-5 accuracy, MRR, no-match precision and recall,
breakdowns by modality and data source, calibration by confidence band, and the list of errors.
Judging uses :func:`nhs_lookup.cases.correct_rank` (the project's single gold rule).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.cases import correct_rank
from nhs_lookup.records import Case, LookupResult

CONFIDENCE_BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0001))


@dataclass
class GroupStats:
    n: int = 0
    top1: int = 0
    top5: int = 0

    @property
    def top1_accuracy(self) -> float:
        return self.top1 / self.n if self.n else 0.0

    @property
    def top5_accuracy(self) -> float:
        return self.top5 / self.n if self.n else 0.0


@dataclass
class CalibrationBand:
    low: float
    high: float
    n: int = 0
    correct: int = 0
    mean_confidence: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


@dataclass
class CaseOutcome:
    """One judged case (kept for the error list and per-case exports)."""

    case_id: str | None
    exam_name: str
    modality_code: str | None
    data_source: str | None
    predicted: str | None
    confidence: float
    rank: int | None
    acceptable: tuple[str, ...]
    gold_no_match: bool
    no_match_reason: str | None


@dataclass
class EvaluationReport:
    """Metrics of one evaluation run (the framework reuses these fields)."""

    n_cases: int = 0
    top1_accuracy: float = 0.0
    top5_accuracy: float = 0.0
    mrr: float = 0.0
    no_match_precision: float = 0.0  # of the engine's no-matches, share that gold also calls no-match
    no_match_recall: float = 0.0  # of gold no-match cases, share the engine returned as no-match
    coverage: float = 0.0  # share of cases with a match
    mean_confidence: float = 0.0
    exams_per_second: float = 0.0
    by_modality: dict[str, GroupStats] = field(default_factory=dict)
    by_source: dict[str, GroupStats] = field(default_factory=dict)
    calibration: list[CalibrationBand] = field(default_factory=list)
    outcomes: list[CaseOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.rank != 1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["errors"] = [dataclasses.asdict(o) for o in self.errors]
        for key in ("by_modality", "by_source"):
            for name, g in getattr(self, key).items():
                d[key][name].update(top1_accuracy=g.top1_accuracy, top5_accuracy=g.top5_accuracy)
        for i, b in enumerate(self.calibration):
            d["calibration"][i]["accuracy"] = b.accuracy
        return d


def summarize(
    cases: Sequence[Case], results: Sequence[LookupResult], elapsed_s: float = 0.0
) -> EvaluationReport:
    """Build the report from cases and the engine's results (same order)."""
    rep = EvaluationReport(n_cases=len(cases))
    if not cases:
        return rep
    by_mod: dict[str, GroupStats] = defaultdict(GroupStats)
    by_src: dict[str, GroupStats] = defaultdict(GroupStats)
    bands = [CalibrationBand(lo, hi) for lo, hi in CONFIDENCE_BANDS]
    rr = 0.0
    engine_nm = engine_nm_right = gold_nm = gold_nm_found = 0
    top1 = top5 = matched = 0
    conf_sum = 0.0
    for case, res in zip(cases, results, strict=True):
        rank = correct_rank(res, case)
        ok1 = rank == 1
        ok5 = rank is not None and rank <= 5
        top1 += ok1
        top5 += ok5
        rr += 1.0 / rank if rank else 0.0
        matched += res.matched
        conf_sum += res.confidence
        if not res.matched:
            engine_nm += 1
            engine_nm_right += case.no_match
        if case.no_match:
            gold_nm += 1
            gold_nm_found += not res.matched
        for groups, key in (
            (by_mod, case.query.modality_code or "?"),
            (by_src, case.query.data_source or "?"),
        ):
            g = groups[key]
            g.n += 1
            g.top1 += ok1
            g.top5 += ok5
        conf = (
            res.confidence
            if res.matched
            else 1.0 - res.confidence
            if res.no_match_reason == "low_confidence"
            else 1.0
        )
        for b in bands:
            if b.low <= conf < b.high:
                b.mean_confidence = (b.mean_confidence * b.n + conf) / (b.n + 1)
                b.n += 1
                b.correct += ok1
                break
        rep.outcomes.append(
            CaseOutcome(
                case_id=case.case_id,
                exam_name=case.query.exam_name,
                modality_code=case.query.modality_code,
                data_source=case.query.data_source,
                predicted=res.best.entry.name if res.best else None,
                confidence=round(res.confidence, 4),
                rank=rank,
                acceptable=case.acceptable,
                gold_no_match=case.no_match,
                no_match_reason=res.no_match_reason,
            )
        )
    n = len(cases)
    rep.top1_accuracy = top1 / n
    rep.top5_accuracy = top5 / n
    rep.mrr = rr / n
    rep.no_match_precision = engine_nm_right / engine_nm if engine_nm else 1.0
    rep.no_match_recall = gold_nm_found / gold_nm if gold_nm else 1.0
    rep.coverage = matched / n
    rep.mean_confidence = conf_sum / n
    rep.exams_per_second = n / elapsed_s if elapsed_s > 0 else 0.0
    rep.by_modality = dict(sorted(by_mod.items()))
    rep.by_source = dict(sorted(by_src.items()))
    rep.calibration = bands
    return rep


def evaluate(engine: Any, cases: Iterable[Case]) -> EvaluationReport:
    """Run *engine* (batch mode) on labelled *cases* and summarise. Unlabelled cases are skipped."""
    labelled = [c for c in cases if c.labelled]
    t0 = time.perf_counter()
    results = engine.lookup_many([c.query for c in labelled])
    return summarize(labelled, results, time.perf_counter() - t0)
