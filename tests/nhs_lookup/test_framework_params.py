"""Optimiser search space: weight groups normalised, the seed's grid, round trips of configs."""

import dataclasses

import pytest

from nhs_lookup.config import ScoringConfig
from nhs_lookup.framework.optimize import (
    COMPONENT_KEYS,
    FINAL_KEYS,
    params_from_scoring,
    scoring_from_params,
    seed_grid,
)


def test_weight_groups_are_normalised_to_one():
    params = {f"w_component.{k}": v for k, v in zip(COMPONENT_KEYS, (2, 1, 1, 0, 0), strict=True)}
    params |= {"w_final.component": 3, "w_final.semantic": 1, "w_final.frequency": 0, "retriever_top_k": 50}
    s = scoring_from_params(params, ScoringConfig())
    comp = dataclasses.asdict(s.weights_component)
    assert sum(comp.values()) == pytest.approx(1.0)
    assert comp["anatomy"] == pytest.approx(0.5) and comp["contrast"] == 0
    assert s.weights_final.component == pytest.approx(0.75)
    assert s.retriever_top_k == 50
    # all-zero raw weights fall back to uniform instead of dividing by zero
    zero = scoring_from_params({f"w_final.{k}": 0.0 for k in FINAL_KEYS}, ScoringConfig())
    assert zero.weights_final.semantic == pytest.approx(1 / 3)


def test_default_scoring_round_trips_through_params():
    base = ScoringConfig()
    again = scoring_from_params(params_from_scoring(base), ScoringConfig(exact_match_bonus=0.0))
    for group in ("weights_component", "weights_final"):
        assert dataclasses.asdict(getattr(again, group)) == pytest.approx(
            dataclasses.asdict(getattr(base, group))
        )
    assert again.exact_match_bonus == base.exact_match_bonus and again.retriever_top_k == base.retriever_top_k
    assert again.interventional_penalty == base.interventional_penalty


def test_seed_grid_respects_constraints_and_budget():
    points = seed_grid(25, ScoringConfig())
    assert len(points) == 25
    assert len({tuple(sorted(p.items())) for p in points}) == 25
    for p in points:
        a, m, c = (p[f"w_component.{k}"] for k in ("anatomy", "modality", "contrast"))
        assert a + m + c <= 0.8 + 1e-9
        assert p["w_component.laterality"] == pytest.approx(0.6 * (1 - a - m - c), abs=1e-6)
        assert p["w_final.frequency"] == 0 and p["w_final.component"] == pytest.approx(
            1 - p["w_final.semantic"]
        )
        s = scoring_from_params(p, ScoringConfig())
        assert sum(dataclasses.asdict(s.weights_component).values()) == pytest.approx(1.0)
    # stride thinning spreads the points over the grid rather than taking its first corner
    assert len({p["w_component.anatomy"] for p in points}) > 1
