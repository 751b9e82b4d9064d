"""Patient-grouped, stratified, seeded train/val/test split."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from echoquality.training.split import SplitItem, grouped_stratified_split, read_splits, write_splits


def _items(n_patients: int, clips: int, seed: int = 0) -> list[SplitItem]:
    rng = np.random.default_rng(seed)
    items = []
    for p in range(n_patients):
        n = int(rng.integers(1, clips + 1))
        pos_rate = rng.uniform(0.2, 0.8)
        for c in range(n):
            items.append(SplitItem(f"P{p:03d}/clip{c}", f"P{p:03d}", int(rng.random() < pos_rate)))
    return items


def test_no_patient_in_two_splits_and_fractions_roughly_kept():
    items = _items(60, 10)
    split = grouped_stratified_split(items, (0.7, 0.15, 0.15), seed=1)
    assert set(split) == {it.item_id for it in items}
    groups_per_split: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for it in items:
        groups_per_split[split[it.item_id]].add(it.group)
    assert not groups_per_split["train"] & groups_per_split["val"]
    assert not groups_per_split["train"] & groups_per_split["test"]
    assert not groups_per_split["val"] & groups_per_split["test"]
    sizes = Counter(split.values())
    n = len(items)
    assert abs(sizes["train"] / n - 0.70) < 0.06
    assert abs(sizes["val"] / n - 0.15) < 0.05
    assert abs(sizes["test"] / n - 0.15) < 0.05


def test_stratified_positive_rate_similar_in_each_split():
    items = _items(80, 8, seed=3)
    split = grouped_stratified_split(items, seed=7)
    overall = np.mean([it.label for it in items])
    for name in ("train", "val", "test"):
        labels = [it.label for it in items if split[it.item_id] == name]
        assert abs(np.mean(labels) - overall) < 0.08, name


def test_seeded_reproducible_and_seed_matters():
    items = _items(40, 6, seed=5)
    a = grouped_stratified_split(items, seed=11)
    b = grouped_stratified_split(list(reversed(items)), seed=11)
    assert a == b  # input order does not matter either
    others = [grouped_stratified_split(items, seed=s) for s in range(12, 17)]
    assert any(o != a for o in others)


def test_tiny_dataset_gets_nonempty_splits_with_both_classes():
    # 5 patients, each with one good and one poor clip, plus one single-class patient
    items = [SplitItem(f"p{p}/{c}", f"p{p}", c % 2) for p in range(5) for c in range(2)]
    items.append(SplitItem("p9/0", "p9", 1))
    split = grouped_stratified_split(items, seed=0)
    for name in ("train", "val", "test"):
        labels = {it.label for it in items if split[it.item_id] == name}
        assert labels == {0, 1}, (name, labels)


def test_single_class_patients_still_split_both_classes_into_val_and_test():
    items = [SplitItem(f"g{p}/{c}", f"g{p}", p % 2) for p in range(8) for c in range(3)]
    split = grouped_stratified_split(items, seed=4)
    for name in ("val", "test"):
        assert {it.label for it in items if split[it.item_id] == name} == {0, 1}
    assert {it.label for it in items if split[it.item_id] == "train"} == {0, 1}


def test_bad_fractions_rejected():
    with pytest.raises(ValueError):
        grouped_stratified_split([SplitItem("a", "g", 1)], (0.5, -0.1, 0.6))


def test_splits_csv_roundtrip(tmp_path):
    rows = [("a.dcm", "p1", 1, "train"), ("b.dcm", "p2", 0, "test")]
    write_splits(tmp_path / "splits.csv", rows)
    assert read_splits(tmp_path / "splits.csv") == {"a.dcm": "train", "b.dcm": "test"}
