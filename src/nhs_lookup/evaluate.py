"""Evaluation against gold-labelled cases: top-1 / top-5 accuracy, MRR, no-match precision and recall,
ECE, auto-accept coverage at 99% precision, breakdowns by modality and data source, calibration bands
and the list of errors. Every figure comes from :mod:`nhs_lookup.metrics`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.metrics import BandStats, CaseOutcome, GroupStats, outcomes_of, report
from nhs_lookup.records import Case, LookupResult


@dataclass
class EvaluationReport:
    """Metrics of one evaluation run."""

    n_cases: int = 0
    top1_accuracy: float = 0.0
    top5_accuracy: float = 0.0
    mrr: float = 0.0
    no_match_precision: float = 1.0  # of the engine's no-matches, share that gold also calls no-match
    no_match_recall: float = 1.0  # of gold no-match cases, share the engine returned as no-match
    coverage: float = 0.0  # share of cases with a match
    mean_confidence: float = 0.0
    ece: float | None = None
    auto_accept_coverage: float = 0.0  # share of answers above the lowest threshold with precision >= 99%
    auto_accept_threshold: float | None = None
    exams_per_second: float = 0.0
    by_modality: dict[str, GroupStats] = field(default_factory=dict)
    by_source: dict[str, GroupStats] = field(default_factory=dict)
    calibration: list[BandStats] = field(default_factory=list)
    outcomes: list[CaseOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.rank != 1]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["by_modality"] = {k: g.summary() for k, g in self.by_modality.items()}
        d["by_source"] = {k: g.summary() for k, g in self.by_source.items()}
        d["calibration"] = [b.to_dict() for b in self.calibration]
        d["outcomes"] = [_outcome_dict(o) for o in self.outcomes]
        d["errors"] = [_outcome_dict(o) for o in self.errors]
        return d


def _outcome_dict(o: CaseOutcome) -> dict[str, Any]:
    d = dataclasses.asdict(o)
    d.update(rank=o.rank, gold_no_match=o.gold_no_match, acceptable=list(o.acceptable))
    return d


def report_from_outcomes(outcomes: Sequence[CaseOutcome], elapsed_s: float = 0.0) -> EvaluationReport:
    """Build the report from judged outcomes (labelled cases)."""
    rep = report(outcomes)
    s = rep.summary
    n = s.cases
    return EvaluationReport(
        n_cases=n,
        top1_accuracy=s.top1 or 0.0,
        top5_accuracy=s.top5 or 0.0,
        mrr=s.mrr or 0.0,
        no_match_precision=1.0 if s.no_match_precision is None else s.no_match_precision,
        no_match_recall=1.0 if s.no_match_recall is None else s.no_match_recall,
        coverage=s.coverage or 0.0,
        mean_confidence=s.mean_confidence or 0.0,
        ece=s.ece,
        auto_accept_coverage=s.auto_accept_coverage,
        auto_accept_threshold=s.auto_accept_threshold,
        exams_per_second=n / elapsed_s if elapsed_s > 0 else 0.0,
        by_modality=rep.by_modality,
        by_source=rep.by_source,
        calibration=rep.bands,
        outcomes=list(outcomes),
    )


def summarize(
    cases: Sequence[Case], results: Sequence[LookupResult], elapsed_s: float = 0.0
) -> EvaluationReport:
    """Build the report from cases and the engine's results (same order)."""
    return report_from_outcomes(outcomes_of(cases, results), elapsed_s)


def evaluate(engine: Any, cases: Iterable[Case]) -> EvaluationReport:
    """Run *engine* (batch mode) on labelled *cases* and summarise. Unlabelled cases are skipped."""
    labelled = [c for c in cases if c.labelled]
    t0 = time.perf_counter()
    results = engine.lookup_many([c.query for c in labelled])
    return summarize(labelled, results, time.perf_counter() - t0)
