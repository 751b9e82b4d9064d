"""A calibration map behind ``confidence``: isotonic regression (pool-adjacent-violators) from the
engine's raw confidence to the observed probability that its top candidate is right, fitted on
out-of-fold answers so it is not optimistic. Stored as knots and interpolated linearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nhs_lookup.scoring import calibrate as raw_confidence

# Bounds keep a calibrated answer from claiming certainty the data cannot show.
FLOOR, CEIL = 0.0, 1.0
PRIOR = 0.5
# Isotonic maps are flat between knots; a tiny slope keeps the raw order inside a flat step, so a
# threshold (auto-accept, no-match) can still separate answers the raw score separates.
TIE_BREAK = 1e-3


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators: non-decreasing fit of *y* on *x*. Returns (knots x, fitted y), one knot
    per pooled block (its mean x, its mean y shrunk by a half-case prior), for linear interpolation."""
    if len(x) == 0:
        return [0.0, 1.0], [0.0, 1.0]
    order = np.argsort(np.asarray(x, dtype=float), kind="mergesort")
    xs = np.asarray(x, dtype=float)[order]
    ys = np.asarray(y, dtype=float)[order]
    blocks: list[list[float]] = []  # [sum y, sum x, n]
    for xv, yv in zip(xs, ys, strict=True):
        blocks.append([yv, xv, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][2] >= blocks[-1][0] / blocks[-1][2]:
            y2, x2, n2 = blocks.pop()
            blocks[-1][0] += y2
            blocks[-1][1] += x2
            blocks[-1][2] += n2
    knots_x = [b[1] / b[2] for b in blocks]
    # Half a pseudo-case each way: a block of n right answers says p = (n + 0.5) / (n + 1), not 1.
    knots_y = [(b[0] + PRIOR) / (b[2] + 2 * PRIOR) for b in blocks]
    return knots_x, knots_y


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Callable with the engine's calibrator signature ``(top, margin, hard) -> confidence``."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def fit(cls, raw: Sequence[float], correct: Sequence[bool]) -> IsotonicCalibrator:
        kx, ky = isotonic_fit(raw, [float(c) for c in correct])
        return cls(tuple(round(v, 6) for v in kx), tuple(round(v, 6) for v in ky))

    def probability(self, raw: float) -> float:
        if len(self.x) == 1:
            return float(self.y[0])
        p = np.interp(raw, self.x, self.y) + TIE_BREAK * (raw - 0.5)
        return float(np.clip(p, FLOOR, CEIL))

    def __call__(self, top: float, margin: float, hard: float) -> float:
        return self.probability(raw_confidence(top, margin, hard))

    def to_dict(self) -> dict[str, object]:
        return {"method": "isotonic", "input": "engine raw confidence", "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IsotonicCalibrator:
        if data.get("method") != "isotonic":
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        x, y = list(data["x"]), list(data["y"])  # type: ignore[call-overload]
        if not x or len(x) != len(y):
            raise ValueError("calibration knots x and y must be non-empty and of equal length")
        return cls(tuple(map(float, x)), tuple(map(float, y)))
