"""Train/val/test split, stratified by label and grouped by patient (seeded, deterministic).

No patient appears in two splits (clips of one patient share anatomy and machine: putting
them on both sides inflates test scores). A greedy assignment handles the tiny datasets
that sklearn's fold-based splitters reject: groups go, largest first in a seeded order,
to the split whose per-class target is furthest from being met. Afterwards val and test
are made non-empty and given both classes where the data allows it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitItem:
    """One clip for splitting: an id (e.g. video_path), its patient group and label 0/1."""

    item_id: str
    group: str
    label: int


def grouped_stratified_split(
    items: Sequence[SplitItem], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42
) -> dict[str, str]:
    """Map item_id -> 'train' | 'val' | 'test'."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    frac = np.asarray(fractions, dtype=float) / sum(fractions)
    groups: dict[str, np.ndarray] = {}
    for it in items:
        counts = groups.setdefault(it.group, np.zeros(2, dtype=float))
        counts[1 if it.label else 0] += 1
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda g: -groups[g].sum())  # stable: ties keep the seeded order

    totals = sum(groups.values(), np.zeros(2))
    target = frac[:, None] * totals[None, :]  # (split, class)
    current = np.zeros((3, 2))
    assign: dict[str, int] = {}
    for g in order:
        c = groups[g]
        # deficit of each split, weighted by the group's class mix; empty targets never win
        deficit = ((target - current) * c[None, :]).sum(axis=1) / max(c.sum(), 1.0)
        deficit[frac == 0] = -np.inf
        s = int(np.argmax(deficit))
        assign[g] = s
        current[s] += c

    _repair(assign, groups, frac)
    group_of = {it.item_id: it.group for it in items}
    return {item_id: SPLITS[assign[g]] for item_id, g in group_of.items()}


def _repair(assign: dict[str, int], groups: dict[str, np.ndarray], frac: np.ndarray) -> None:
    """Give val/test at least one group, then both classes, taking the smallest fitting train groups."""

    def members(s: int) -> list[str]:
        return sorted((g for g, a in assign.items() if a == s), key=lambda g: (groups[g].sum(), g))

    def class_count(s: int, cls: int) -> float:
        return sum(groups[g][cls] for g in members(s))

    for s in (2, 1):  # test first, then val
        if frac[s] == 0:
            continue
        if not members(s):
            donors = members(0) if len(members(0)) > 1 else []
            if donors:
                assign[donors[0]] = s
        for cls in (0, 1):
            if class_count(s, cls) > 0:
                continue
            for g in members(0):
                # move only if train keeps that class too
                if groups[g][cls] > 0 and class_count(0, cls) - groups[g][cls] > 0:
                    assign[g] = s
                    break


def write_splits(path: Path, rows: Sequence[tuple[str, str, int, str]]) -> None:
    """Write (item_id, group, label, split) rows to a CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_path", "patient_group", "label", "split"])
        writer.writerows(rows)


def read_splits(path: Path) -> dict[str, str]:
    with path.open(newline="") as fh:
        return {row["video_path"]: row["split"] for row in csv.DictReader(fh)}
