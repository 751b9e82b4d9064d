"""Simulated site rollout: a model fitted on the other hospitals meets a new one; a reviewer labels a
share of the new hospital's names, the model is refitted with them, and both models are judged on the
new hospital's remaining names (never on the reviewed ones)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nhs_lookup.metrics import Metrics, outcome_of, summarize, with_fixed_threshold
from nhs_lookup.records import Case

from .crossval import NO_SOURCE, accept_threshold, name_key
from .fit import FitOptions, fitted_engine


@dataclass
class Rollout:
    hospital: str
    reviewed: int
    held_out: int
    before: Metrics  # fitted on the other hospitals only
    after: Metrics  # refitted with the reviewed share of this hospital

    def to_dict(self) -> dict[str, Any]:
        return {
            "hospital": self.hospital,
            "reviewed": self.reviewed,
            "held_out": self.held_out,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def simulate_rollout(
    base: Any,
    cases: Sequence[Case],
    hospital: str,
    share: float = 0.2,
    seed: int = 0,
    opts: FitOptions | None = None,
) -> Rollout:
    """Review *share* of *hospital*'s distinct names (seeded), judge the rest before and after refitting."""
    site = [c for c in cases if (c.query.data_source or NO_SOURCE) == hospital]
    others = [c for c in cases if (c.query.data_source or NO_SOURCE) != hospital]
    if not site or not others:
        raise ValueError(f"hospital {hospital!r} needs cases of its own and of other hospitals")
    names = sorted({name_key(c) for c in site})
    random.Random(seed).shuffle(names)
    reviewed_names = set(names[: max(1, round(share * len(names)))])
    reviewed = [c for c in site if name_key(c) in reviewed_names]
    rest = [c for c in site if name_key(c) not in reviewed_names]
    queries = [c.query for c in rest]

    def judge(train: list[Case]) -> Metrics:
        """Fit on *train*, judge the held-out names; auto-accept at the model's own threshold."""
        engine = fitted_engine(base, train, opts)
        outs = [
            outcome_of(c, r, i)
            for i, (c, r) in enumerate(zip(rest, engine.lookup_many(queries), strict=True))
        ]
        return with_fixed_threshold(summarize(outs), outs, accept_threshold(engine, train))

    before = judge(others)
    after = judge(others + reviewed)
    return Rollout(hospital, len(reviewed), len(rest), before, after)
