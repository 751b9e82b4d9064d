"""Train/validation split: held-out sources, seeded random split, fallbacks."""

from collections import Counter

import pytest

from nhs_lookup.framework.split import TRAIN, VALIDATION, choose_validation_sources, plan_split, split_cases
from nhs_lookup.records import Case, ExamQuery


def _cases(spec: dict[str, int]) -> list[Case]:
    return [
        Case(ExamQuery(f"XR Exam {src} {i}", "XR", data_source=src), acceptable=("XR Chest",))
        for src, n in spec.items()
        for i in range(n)
    ]


def test_source_split_holds_out_whole_sources_close_to_the_fraction():
    cases = _cases({"Agfa": 45, "Comrad": 28, "Philips": 17, "Karisma": 10})
    plan = plan_split("source", 0.3, seed=0, source_counts=Counter(c.query.data_source for c in cases))
    train, val = split_cases(cases, plan)
    assert plan.mode == "source" and plan.validation_sources
    val_sources = {c.query.data_source for c in val}
    train_sources = {c.query.data_source for c in train}
    assert val_sources == set(plan.validation_sources)
    assert not val_sources & train_sources  # no source on both sides
    assert abs(len(val) - 30) <= 3  # 28 or 17+10 are the closest subsets to 30 cases


def test_source_split_never_holds_out_every_source_and_falls_back_with_one_source():
    assert choose_validation_sources(Counter({"a": 5, "b": 5}), 0.99, seed=1) in (("a",), ("b",))
    plan = plan_split("source", 0.2, seed=0, source_counts=Counter({"only": 50}))
    assert plan.mode == "random" and "one data source" in plan.note


def test_random_split_is_seeded_and_stable_per_case():
    cases = _cases({"Agfa": 400})
    a = split_cases(cases, plan_split("random", 0.25, seed=3))
    b = split_cases(cases, plan_split("random", 0.25, seed=3))
    c = split_cases(cases, plan_split("random", 0.25, seed=4))
    assert [x.query.exam_name for x in a[1]] == [x.query.exam_name for x in b[1]]
    assert [x.query.exam_name for x in a[1]] != [x.query.exam_name for x in c[1]]
    assert 60 <= len(a[1]) <= 140  # about a quarter
    plan = plan_split("random", 0.25, seed=3)
    assert plan.assign(7, cases[7]) == plan.assign(7, cases[7]) in (TRAIN, VALIDATION)


def test_zero_fraction_and_bad_arguments():
    cases = _cases({"a": 3, "b": 3})
    train, val = split_cases(cases, plan_split("source", 0.0, 0, Counter({"a": 3, "b": 3})))
    assert len(train) == 6 and not val
    with pytest.raises(ValueError, match="split mode"):
        plan_split("alphabetical", 0.1, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        plan_split("random", 1.0, 0)
