"""Train/validation split of a case stream, decided before any case is processed.

Splits are a pure function of (case index, case, seed, the set of source counts), so a resumed or
parallel run assigns every case the same split without holding the case list in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from nhs_lookup.records import Case

TRAIN = "train"
VALIDATION = "validation"
SPLIT_MODES = ("source", "random")
NO_SOURCE = "(no source)"


@dataclass(frozen=True)
class SplitPlan:
    """How cases are assigned: by held-out data source, or at random with a seed."""

    mode: str  # source | random
    fraction: float
    seed: int
    validation_sources: tuple[str, ...] = ()  # mode == source
    note: str = ""

    def assign(self, index: int, case: Case) -> str:
        if self.fraction <= 0:
            return TRAIN
        if self.mode == "source":
            return VALIDATION if source_of(case) in self.validation_sources else TRAIN
        return (
            VALIDATION if _unit_hash(f"{self.seed}:{index}:{case.query.exam_name}") < self.fraction else TRAIN
        )


def source_of(case: Case) -> str:
    return case.query.data_source or NO_SOURCE


def _unit_hash(text: str) -> float:
    """A stable pseudo-random number in [0, 1) (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_validation_sources(counts: Counter[str], fraction: float, seed: int) -> tuple[str, ...]:
    """Pick whole sources whose share of cases is closest to *fraction* (never every source).

    Ties are broken by a seeded shuffle so a different seed can hold out a different source.
    Exhaustive over subsets up to 16 sources, greedy beyond that.
    """
    total = sum(counts.values())
    if fraction <= 0 or total == 0 or len(counts) < 2:
        return ()
    target = fraction * total
    names = sorted(counts)
    random.Random(seed).shuffle(names)
    best: tuple[str, ...] = ()
    best_gap = float("inf")
    if len(names) <= 16:
        for size in range(1, len(names)):
            for subset in itertools.combinations(names, size):
                gap = abs(sum(counts[s] for s in subset) - target)
                if gap < best_gap - 1e-9:
                    best, best_gap = subset, gap
    else:
        chosen: list[str] = []
        held = 0
        for name in names:
            if held + counts[name] <= target or not chosen:
                chosen.append(name)
                held += counts[name]
        best = tuple(chosen[: len(names) - 1])
    return tuple(sorted(best))


def plan_split(mode: str, fraction: float, seed: int, source_counts: Counter[str] | None = None) -> SplitPlan:
    """Build the split plan; ``source`` mode falls back to ``random`` when there is one source."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
    if not 0 <= fraction < 1:
        raise ValueError(f"validation split must be in [0, 1), got {fraction}")
    if mode == "source" and fraction > 0:
        counts = source_counts or Counter()
        held = choose_validation_sources(counts, fraction, seed)
        if held:
            share = sum(counts[s] for s in held) / max(1, sum(counts.values()))
            return SplitPlan("source", fraction, seed, held, f"held-out sources ({share:.0%} of cases)")
        return SplitPlan("random", fraction, seed, note="one data source only: random split instead")
    return SplitPlan(mode, fraction, seed)


def split_cases(cases: Iterable[Case], plan: SplitPlan) -> tuple[list[Case], list[Case]]:
    """Split an in-memory list (optimiser, validation)."""
    train: list[Case] = []
    validation: list[Case] = []
    for i, case in enumerate(cases):
        (validation if plan.assign(i, case) == VALIDATION else train).append(case)
    return train, validation
