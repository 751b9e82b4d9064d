"""Honest evaluation: folds grouped by normalised exam name (seeded) or one fold per hospital
(``DATA_SOURCE``); each fold's model is fitted on the other folds only and judged on the held-out one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.metrics import (
    TARGET_PRECISION,
    CaseOutcome,
    Metrics,
    auto_accept,
    outcome_of,
    summarize,
    with_fixed_threshold,
)
from nhs_lookup.normalize import normalize
from nhs_lookup.records import Case

HOSPITAL = "hospital"
NO_SOURCE = "(no source)"


@dataclass(frozen=True)
class Fold:
    """One split: indices into the case list."""

    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]


def name_key(case: Case) -> str:
    """The grouping key: the normalised exam name (different spellings of one name share a fold)."""
    return normalize(case.query.exam_name) or case.query.exam_name.strip().casefold()


def grouped_folds(cases: Sequence[Case], k: int, seed: int = 0) -> list[Fold]:
    """*k* folds with every normalised name in exactly one test fold; groups are shuffled with *seed*
    and dealt largest first to the currently smallest fold (balanced sizes)."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(name_key(c), []).append(i)
    if len(groups) < k:
        raise ValueError(f"{len(groups)} distinct names cannot fill {k} folds")
    keys = sorted(groups, key=lambda g: hashlib.blake2b(g.encode(), digest_size=8).hexdigest())
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda g: -len(groups[g]))  # stable: equal sizes keep the shuffled order
    members: list[list[int]] = [[] for _ in range(k)]
    for g in keys:
        smallest = min(range(k), key=lambda f: (len(members[f]), f))
        members[smallest].extend(groups[g])
    return _folds([f"fold {i + 1}" for i in range(k)], members, len(cases))


def hospital_folds(cases: Sequence[Case]) -> list[Fold]:
    """Leave one data source out: one fold per ``DATA_SOURCE``."""
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        by_source.setdefault(c.query.data_source or NO_SOURCE, []).append(i)
    if len(by_source) < 2:
        raise ValueError("leave-one-hospital-out needs cases from at least 2 data sources")
    names = sorted(by_source)
    return _folds(names, [by_source[n] for n in names], len(cases))


def _folds(names: list[str], members: list[list[int]], n: int) -> list[Fold]:
    out = []
    for name, test in zip(names, members, strict=True):
        held = set(test)
        out.append(Fold(name, tuple(i for i in range(n) if i not in held), tuple(sorted(test))))
    return out


def make_folds(cases: Sequence[Case], cv: str | int, seed: int = 0) -> list[Fold]:
    """``cv``: a fold count (grouped by name) or ``"hospital"``."""
    if str(cv).strip().lower() == HOSPITAL:
        return hospital_folds(cases)
    try:
        k = int(cv)
    except ValueError as exc:
        raise ValueError(f"--cv must be a number of folds or '{HOSPITAL}', got {cv!r}") from exc
    return grouped_folds(cases, k, seed)


# A fitter: training cases -> an engine (anything with lookup_many) fitted on them only.
Fitter = Callable[[list[Case]], Any]


@dataclass
class FoldResult:
    fold: Fold
    metrics: Metrics
    outcomes: list[CaseOutcome] = field(default_factory=list)
    accept_threshold: float | None = None  # auto-accept threshold chosen without the held-out fold


def accept_threshold(engine: Any, train: Sequence[Case], target: float = TARGET_PRECISION) -> float | None:
    """The auto-accept threshold a fold's engine brings from its training cases: a fitted correctness
    model's own (chosen on out-of-fold answers); otherwise the lowest confidence at which the engine's
    answers on the training cases reach *target* precision (honest for an engine that did not learn from
    them; slightly optimistic for one that did)."""
    own = getattr(getattr(engine, "calibrator", None), "auto_accept_threshold", None)
    if own is not None:
        return float(own)
    labelled = [c for c in train if c.labelled]
    if not labelled:
        return None
    outs = [
        outcome_of(c, r, i)
        for i, (c, r) in enumerate(
            zip(labelled, engine.lookup_many([c.query for c in labelled]), strict=True)
        )
    ]
    _, t = auto_accept([(o.confidence, o.top1) for o in outs if o.matched], target, total=len(outs))
    return t


@dataclass
class CrossValidation:
    """Per-fold and pooled figures (pooled: every case judged once, by the model that never saw it)."""

    scheme: str
    folds: list[FoldResult]
    pooled: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "pooled": self.pooled.to_dict(),
            "folds": [
                {
                    "name": f.fold.name,
                    "train": len(f.fold.train),
                    "test": len(f.fold.test),
                    **f.metrics.to_dict(),
                }
                for f in self.folds
            ],
        }


def cross_validate(
    cases: Sequence[Case], folds: Sequence[Fold], fitter: Fitter, scheme: str = ""
) -> CrossValidation:
    """Fit on each fold's training cases, judge the held-out ones, pool all held-out outcomes.

    Auto-accept coverage is honest: each fold accepts its answers at the threshold chosen on its training
    cases (:func:`accept_threshold`); the oracle figure (threshold picked on the test answers) is kept as
    ``auto_accept_oracle_coverage``."""
    results: list[FoldResult] = []
    pooled: list[CaseOutcome] = []
    accepted: list[CaseOutcome] = []  # each fold's outcomes as its own threshold judges them
    for fold in folds:
        train = [cases[i] for i in fold.train]
        engine = fitter(train)
        test = [cases[i] for i in fold.test]
        answers = engine.lookup_many([c.query for c in test])
        outs = [
            outcome_of(c, r, i, split=fold.name) for i, c, r in zip(fold.test, test, answers, strict=True)
        ]
        t = accept_threshold(engine, train)
        results.append(FoldResult(fold, with_fixed_threshold(summarize(outs), outs, t), outs, t))
        pooled.extend(outs)
        accepted.extend(_accepted_marker(outs, t))
    pooled.sort(key=lambda o: o.case_index)
    return CrossValidation(scheme, results, _pooled(pooled, accepted))


def _accepted_marker(outs: list[CaseOutcome], t: float | None) -> list[CaseOutcome]:
    """The fold's outcomes with confidence 1 when accepted at *t*, 0 otherwise (for pooling)."""
    from dataclasses import replace

    return [replace(o, confidence=float(t is not None and o.matched and o.confidence >= t)) for o in outs]


def _pooled(pooled: list[CaseOutcome], accepted: list[CaseOutcome]) -> Metrics:
    """Pooled figures; auto-accept: every fold's acceptances at its own threshold, counted together."""
    m = with_fixed_threshold(summarize(pooled), accepted, 1.0)
    m.auto_accept_threshold = None  # one per fold
    return m
