"""The lookup metrics, in one place: case outcome, top-k, MRR, no-match precision/recall, calibration
bands, expected calibration error, auto-accept coverage at a target precision and per-group stats.

Used by ``evaluate`` (and its cross-validation), the training report, ``validate`` and the optimiser.
Judging uses :func:`nhs_lookup.cases.correct_rank` (the project's single gold rule).

Confidence of an *answer*: a match answers "this row" with probability ``confidence``; a no-match answers
"no row fits", which is right with probability ``1 - confidence`` when the engine abstained on a low score
and with probability 1 when a rule (administrative entry, nothing to map) decided it. Calibration bands,
and ECE use this answer confidence, so abstentions count as answers. Auto-accept coverage counts matched
answers only (an abstention always goes to a reviewer), as a share of all judged cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.cases import correct_rank
from nhs_lookup.records import Case, LookupResult

NO_MATCH = "NO_MATCH"
# One band table: [low, high) edges of answer confidence (the original review UI's bands).
BAND_EDGES: tuple[float, ...] = (0.0, 0.5, 0.7, 0.9, 1.0)
ECE_BINS = 10
TARGET_PRECISION = 0.99


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

    @property
    def gold_no_match(self) -> bool:
        return self.expected == (NO_MATCH,)

    @property
    def acceptable(self) -> tuple[str, ...]:
        return () if self.gold_no_match else self.expected

    @property
    def rank(self) -> int | None:
        return self.correct_rank

    @property
    def top1(self) -> bool:
        return self.correct_rank == 1

    @property
    def answer_confidence(self) -> float:
        return answer_confidence(self.matched, self.confidence, self.no_match_reason)

    def expected_json(self) -> str | None:
        return json.dumps(list(self.expected)) if self.expected else None


def answer_confidence(matched: bool, confidence: float, no_match_reason: str | None) -> float:
    """Probability that the answer given (a row, or no match) is right (see the module docstring)."""
    if matched:
        return float(confidence)
    if no_match_reason == "low_confidence":
        return 1.0 - float(confidence)
    return 1.0


def expected_of(case: Case) -> tuple[str, ...]:
    if case.no_match:
        return (NO_MATCH,)
    return tuple(case.acceptable)


def case_fields(case: Case, index: int, split: str) -> dict[str, Any]:
    """The fields of a :class:`CaseOutcome` that come from the case itself (shared by results and errors)."""
    q = case.query
    return {
        "case_index": index,
        "exam_name": q.exam_name,
        "case_id": case.case_id,
        "data_source": q.data_source,
        "modality_code": q.modality_code,
        "exam_code": q.exam_code,
        "expected": expected_of(case),
        "split": split,
    }


def outcome_of(
    case: Case, result: LookupResult, index: int = 0, split: str = "train", elapsed_ms: float = 0.0
) -> CaseOutcome:
    """Judge one engine result against its case."""
    best = result.best
    return CaseOutcome(
        **case_fields(case, index, split),
        predicted=best.entry.name if best is not None else None,
        snomed_id=best.entry.snomed_id if best is not None else None,
        modality=result.components.modality or case.query.modality_code,
        confidence=float(result.confidence),
        correct_rank=correct_rank(result, case) if case.labelled else None,
        no_match_reason=result.no_match_reason,
        elapsed_ms=elapsed_ms,
    )


def outcomes_of(cases: Sequence[Case], results: Sequence[LookupResult]) -> list[CaseOutcome]:
    return [outcome_of(c, r, i) for i, (c, r) in enumerate(zip(cases, results, strict=True))]


# -- groups ------------------------------------------------------------------------------------------
def _ratio(num: float, den: int) -> float | None:
    return num / den if den else None


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class GroupStats:
    """Counts and accuracies for one slice of the cases (all, a modality, a data source, a split)."""

    cases: int = 0
    labelled: int = 0
    top1: int = 0
    top5: int = 0
    reciprocal_rank: float = 0.0
    confidence_sum: float = 0.0
    errors: int = 0

    def add(self, o: CaseOutcome) -> None:
        self.cases += 1
        self.confidence_sum += o.confidence
        self.errors += o.error is not None
        if o.labelled:
            self.labelled += 1
            if o.correct_rank is not None:
                self.top1 += o.correct_rank == 1
                self.top5 += o.correct_rank <= 5
                self.reciprocal_rank += 1.0 / o.correct_rank

    @property
    def top1_accuracy(self) -> float | None:
        return _ratio(self.top1, self.labelled)

    @property
    def top5_accuracy(self) -> float | None:
        return _ratio(self.top5, self.labelled)

    @property
    def mrr(self) -> float | None:
        return _ratio(self.reciprocal_rank, self.labelled)

    @property
    def average_confidence(self) -> float | None:
        return _ratio(self.confidence_sum, self.cases)

    def summary(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "labelled": self.labelled,
            "top1_accuracy": _r(self.top1_accuracy),
            "top5_accuracy": _r(self.top5_accuracy),
            "mrr": _r(self.mrr),
            "average_confidence": _r(self.average_confidence),
            "errors": self.errors,
        }


def group_stats(outcomes: Iterable[CaseOutcome]) -> GroupStats:
    g = GroupStats()
    for o in outcomes:
        g.add(o)
    return g


def grouped(outcomes: Iterable[CaseOutcome], key: Callable[[CaseOutcome], str]) -> dict[str, GroupStats]:
    """Per-group stats, groups sorted by name."""
    groups: dict[str, GroupStats] = {}
    for o in outcomes:
        groups.setdefault(key(o), GroupStats()).add(o)
    return dict(sorted(groups.items()))


# -- calibration -------------------------------------------------------------------------------------
@dataclass
class BandStats:
    """Calibration: accuracy of the labelled cases whose answer confidence falls in a band."""

    low: float
    high: float
    cases: int = 0
    labelled: int = 0
    correct: int = 0
    confidence_sum: float = 0.0

    @property
    def band(self) -> str:
        return f"{self.low:.2f}-{self.high:.2f}"

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.correct, self.labelled)

    @property
    def mean_confidence(self) -> float | None:
        return _ratio(self.confidence_sum, self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "cases": self.cases,
            "labelled": self.labelled,
            "accuracy": _r(self.accuracy),
            "mean_confidence": _r(self.mean_confidence),
        }


def _band_index(conf: float, edges: Sequence[float]) -> int:
    for i in range(len(edges) - 1):
        if conf < edges[i + 1]:
            return i
    return len(edges) - 2  # 1.0 belongs to the top band


def _new_bands(edges: Sequence[float]) -> list[BandStats]:
    return [BandStats(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _add_to_bands(bands: list[BandStats], edges: Sequence[float], o: CaseOutcome) -> None:
    conf = o.answer_confidence
    b = bands[_band_index(conf, edges)]
    b.cases += 1
    b.confidence_sum += conf
    if o.labelled:
        b.labelled += 1
        b.correct += o.top1


def calibration_bands(
    outcomes: Iterable[CaseOutcome], edges: Sequence[float] = BAND_EDGES
) -> list[BandStats]:
    """The band table (highest band first): cases, labelled cases, top-1 accuracy, mean confidence."""
    bands = _new_bands(edges)
    for o in outcomes:
        if o.error is None:
            _add_to_bands(bands, edges, o)
    return bands[::-1]


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], n_bins: int = ECE_BINS) -> float | None:
    """ECE over (answer confidence, answer correct) pairs: the case-weighted mean |accuracy - confidence|
    over equal-width confidence bins."""
    if not pairs:
        return None
    edges = [i / n_bins for i in range(n_bins + 1)]
    sums = [[0, 0.0, 0] for _ in range(n_bins)]  # n, confidence sum, correct
    for conf, ok in pairs:
        s = sums[_band_index(conf, edges)]
        s[0] += 1
        s[1] += conf
        s[2] += ok
    return sum(abs(c / n - k / n) * n for n, c, k in sums if n) / len(pairs)


def auto_accept(
    pairs: Sequence[tuple[float, bool]], target: float = TARGET_PRECISION, total: int | None = None
) -> tuple[float, float | None]:
    """(coverage, threshold): the share of *total* (default: all pairs) whose confidence is at or above
    the lowest threshold at which the precision of those answers is >= *target*; (0, None) when no
    threshold reaches it. Tied confidences are accepted or refused together."""
    total = len(pairs) if total is None else total
    if not pairs or not total:
        return 0.0, None
    ordered = sorted(pairs, key=lambda p: -p[0])
    best_n, best_t = 0, None
    correct = 0
    for i, (conf, ok) in enumerate(ordered, start=1):
        correct += ok
        last_of_tie = i == len(ordered) or ordered[i][0] < conf
        if last_of_tie and correct / i >= target:
            best_n, best_t = i, conf
    return best_n / total, best_t


def accepted_at(outcomes: Iterable[CaseOutcome], threshold: float | None) -> tuple[int, int, int]:
    """(labelled cases, matched answers at or above *threshold*, of those right at rank 1): auto-accept
    with a threshold fixed beforehand (``None``: nothing is accepted)."""
    n = accepted = right = 0
    for o in outcomes:
        if o.error is not None or not o.labelled:
            continue
        n += 1
        if threshold is not None and o.matched and o.confidence >= threshold:
            accepted += 1
            right += o.top1
    return n, accepted, right


def with_fixed_threshold(m: Metrics, outcomes: Sequence[CaseOutcome], threshold: float | None) -> Metrics:
    """*m* with its auto-accept figures replaced by those of a threshold chosen elsewhere (the honest
    cross-validation figure); the oracle coverage (threshold picked on these outcomes) is kept beside."""
    n, accepted, right = accepted_at(outcomes, threshold)
    m.auto_accept_oracle_coverage = m.auto_accept_coverage
    m.auto_accept_coverage = accepted / n if n else 0.0
    m.auto_accept_precision = _ratio(right, accepted)
    m.auto_accept_threshold = threshold
    return m


# -- summary -----------------------------------------------------------------------------------------
@dataclass
class Metrics:
    """Headline figures of a set of judged cases (labelled cases only)."""

    cases: int = 0
    top1: float | None = None
    top5: float | None = None
    mrr: float | None = None
    no_match_precision: float | None = None  # of the engine's no-matches, share gold also calls no-match
    no_match_recall: float | None = None  # of gold no-match cases, share the engine returned as no-match
    coverage: float | None = None  # share of cases with a match
    mean_confidence: float | None = None
    ece: float | None = None
    auto_accept_coverage: float = 0.0  # at TARGET_PRECISION
    auto_accept_threshold: float | None = None
    target_precision: float = TARGET_PRECISION
    # Cross-validation only: auto_accept_coverage is then the honest figure (each fold's threshold chosen
    # on its training folds), with the precision it reached; the oracle picks the threshold on the test.
    auto_accept_precision: float | None = None
    auto_accept_oracle_coverage: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (_r(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class MetricsAccumulator:
    """Streaming form of :func:`summarize` and :func:`calibration_bands` (keeps two numbers per case)."""

    def __init__(self, target: float = TARGET_PRECISION, edges: Sequence[float] = BAND_EDGES) -> None:
        self.target = target
        self.edges = tuple(edges)
        self.overall = GroupStats()
        self.bands = _new_bands(self.edges)
        self.pairs: list[tuple[float, bool]] = []
        self.matched_pairs: list[tuple[float, bool]] = []
        self.engine_nm = self.engine_nm_right = self.gold_nm = self.gold_nm_found = 0
        self.matched = 0
        self.confidence_sum = 0.0

    def add(self, o: CaseOutcome) -> None:
        if o.error is not None:
            return
        _add_to_bands(self.bands, self.edges, o)
        if not o.labelled:
            return
        self.overall.add(o)
        self.pairs.append((o.answer_confidence, o.top1))
        self.matched += o.matched
        if o.matched:
            self.matched_pairs.append((o.confidence, o.top1))
        self.confidence_sum += o.confidence
        if not o.matched:
            self.engine_nm += 1
            self.engine_nm_right += o.gold_no_match
        if o.gold_no_match:
            self.gold_nm += 1
            self.gold_nm_found += not o.matched

    def band_table(self) -> list[BandStats]:
        return self.bands[::-1]

    def result(self) -> Metrics:
        g, n = self.overall, len(self.pairs)
        cov, threshold = auto_accept(self.matched_pairs, self.target, total=n)
        return Metrics(
            cases=n,
            top1=g.top1_accuracy,
            top5=g.top5_accuracy,
            mrr=g.mrr,
            no_match_precision=_ratio(self.engine_nm_right, self.engine_nm),
            no_match_recall=_ratio(self.gold_nm_found, self.gold_nm),
            coverage=_ratio(self.matched, n),
            mean_confidence=_ratio(self.confidence_sum, n),
            ece=expected_calibration_error(self.pairs),
            auto_accept_coverage=cov,
            auto_accept_threshold=threshold,
            target_precision=self.target,
        )


def summarize(outcomes: Iterable[CaseOutcome], target: float = TARGET_PRECISION) -> Metrics:
    """Top-1/top-5/MRR, no-match precision/recall, ECE and auto-accept coverage of labelled outcomes."""
    acc = MetricsAccumulator(target)
    for o in outcomes:
        acc.add(o)
    return acc.result()


@dataclass
class MetricsReport:
    """Summary plus the slices every report shows."""

    summary: Metrics
    overall: GroupStats
    bands: list[BandStats] = field(default_factory=list)
    by_modality: dict[str, GroupStats] = field(default_factory=dict)
    by_source: dict[str, GroupStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "calibration": [b.to_dict() for b in self.bands],
            "by_modality": {k: v.summary() for k, v in self.by_modality.items()},
            "by_source": {k: v.summary() for k, v in self.by_source.items()},
        }


def report(outcomes: Sequence[CaseOutcome], target: float = TARGET_PRECISION) -> MetricsReport:
    return MetricsReport(
        summary=summarize(outcomes, target),
        overall=group_stats(outcomes),
        bands=calibration_bands(outcomes),
        by_modality=grouped(outcomes, lambda o: o.modality_code or "?"),
        by_source=grouped(outcomes, lambda o: o.data_source or "?"),
    )
