"""Calibration behind ``confidence``, fitted on out-of-fold answers so it is not optimistic.

- :class:`IsotonicCalibrator`: scikit-learn's ``IsotonicRegression`` from one score (the engine's raw
  confidence, or the correctness model's output) to the observed probability that the top row is right.
- :class:`CorrectnessModel`: a regularised logistic regression on the answer's features
  (:mod:`.features`), then isotonic on its output.

Both are stored as plain numbers (knots, coefficients), never pickles, so the model file stays JSON.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from nhs_lookup.scoring import calibrate as raw_confidence

from .features import FEATURES, cheap_features, result_features

FLOOR, CEIL = 0.0, 1.0
PRIOR = 0.5  # half a pseudo-case each way: a block of n right answers says (n + 0.5) / (n + 1), not 1
# Isotonic maps are flat between knots; a tiny slope keeps the input order inside a flat step, so a
# threshold (auto-accept, no-match) can still separate answers the input score separates.
TIE_BREAK = 1e-3
LOGISTIC_C = 1.0  # inverse L2 strength on standardised features (the default two or three inputs)
LOGISTIC_C_MANY = 0.1  # with every feature: stronger (a few hundred answers, some twenty errors)


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Non-decreasing fit of *y* on *x* (scikit-learn). Returns (knots x, fitted y) for linear
    interpolation; each pooled block's value is shrunk by a half-case prior."""
    from sklearn.isotonic import IsotonicRegression

    if len(x) == 0:
        return [0.0, 1.0], [0.0, 1.0]
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    iso = IsotonicRegression(out_of_bounds="clip").fit(xs, ys)
    fitted = iso.predict(xs)
    shrunk: dict[float, float] = {}
    for v in np.unique(fitted):
        m = int(np.sum(fitted == v))
        shrunk[float(v)] = (float(v) * m + PRIOR) / (m + 2 * PRIOR)
    kx = [float(v) for v in iso.X_thresholds_]
    ky = [shrunk.get(float(v), float(v)) for v in iso.y_thresholds_]
    return kx, ky


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Callable with the engine's calibrator signature ``(top, margin, hard) -> confidence``."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    input: str = "engine raw confidence"
    auto_accept_threshold: float | None = None  # chosen on out-of-fold answers (precision >= target)

    @classmethod
    def fit(
        cls, raw: Sequence[float], correct: Sequence[bool], input: str = "engine raw confidence"
    ) -> IsotonicCalibrator:
        kx, ky = isotonic_fit(raw, [float(c) for c in correct])
        return cls(tuple(round(v, 6) for v in kx), tuple(round(v, 6) for v in ky), input)

    def probability(self, raw: float) -> float:
        """Linear interpolation between knots (flat beyond them), plus the tie-break slope; pure Python
        because the engine calls it once per answer."""
        x, y = self.x, self.y
        if len(x) == 1:
            return float(y[0])
        i = bisect_right(x, raw)
        if i == 0:
            v = y[0]
        elif i == len(x):
            v = y[-1]
        else:
            x0, x1 = x[i - 1], x[i]
            v = y[i - 1] + (y[i] - y[i - 1]) * (raw - x0) / (x1 - x0) if x1 > x0 else y[i]
        return min(max(v + TIE_BREAK * (raw - 0.5), FLOOR), CEIL)

    def __call__(self, top: float, margin: float, hard: float) -> float:
        return self.probability(raw_confidence(top, margin, hard))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "isotonic",
            "input": self.input,
            "x": list(self.x),
            "y": list(self.y),
            "auto_accept_threshold": self.auto_accept_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IsotonicCalibrator:
        if data.get("method") != "isotonic":
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        x, y = list(data["x"]), list(data["y"])  # type: ignore[call-overload]
        if not x or len(x) != len(y):
            raise ValueError("calibration knots x and y must be non-empty and of equal length")
        t = data.get("auto_accept_threshold")
        return cls(
            tuple(map(float, x)),
            tuple(map(float, y)),
            str(data.get("input", "engine raw confidence")),
            None if t is None else float(t),  # type: ignore[arg-type]
        )


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


@dataclass(frozen=True)
class LogisticScore:
    """A standardised L2 logistic regression stored as numbers: P(top row right | features)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    @classmethod
    def fit(cls, X: np.ndarray, y: Sequence[bool], c: float = LOGISTIC_C, seed: int = 0) -> LogisticScore:
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = (X - mean) / scale
        yy = np.asarray(y, dtype=int)
        if len(set(yy.tolist())) < 2:  # one class only: a constant
            p = min(max(float(yy.mean()) if len(yy) else 0.5, 1e-3), 1 - 1e-3)
            return cls(tuple(mean), tuple(scale), (0.0,) * X.shape[1], math.log(p / (1 - p)))
        lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(Z, yy)
        r = lambda v: round(float(v), 6)  # noqa: E731
        return cls(tuple(map(r, mean)), tuple(map(r, scale)), tuple(map(r, lr.coef_[0])), r(lr.intercept_[0]))

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = ((X - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def one(self, x: Sequence[float]) -> float:
        z = self.intercept
        for v, m, s, w in zip(x, self.mean, self.scale, self.coef, strict=True):
            z += w * (v - m) / s
        return _sigmoid(z)


@dataclass(frozen=True)
class CorrectnessModel:
    """P(the top row is right) from some of the answer's features (``features``, a subset of
    :data:`~.features.FEATURES`): logistic score, then isotonic calibration. The engine calls
    :meth:`result_confidence` for every answer (see ``LookupEngine._result``)."""

    features: tuple[str, ...]
    score: LogisticScore
    isotonic: IsotonicCalibrator
    auto_accept_threshold: float | None = None  # chosen on out-of-fold answers (precision >= target)
    learned: frozenset[str] = field(default=frozenset(), compare=False)  # learned shorthand tokens

    @cached_property
    def columns(self) -> tuple[int, ...]:
        return tuple(FEATURES.index(f) for f in self.features)

    def with_learned(self, tokens: Collection[str]) -> CorrectnessModel:
        return replace(self, learned=frozenset(tokens))

    def probabilities(self, X: np.ndarray) -> list[float]:
        """Calibrated probabilities of full :data:`FEATURES` rows."""
        return [self.isotonic.probability(float(s)) for s in self.score.predict(X[:, list(self.columns)])]

    def result_confidence(
        self, p: Any, cands: Sequence[Any], hard: float, query: Any, known: Collection[str]
    ) -> float:
        x = cheap_features(self.features, p, cands, hard)
        if x is None:
            full = result_features(p, cands, min(float(hard), 1.0), query, known, self.learned)
            x = [full[i] for i in self.columns]
        return self.isotonic.probability(self.score.one(x))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "logistic+isotonic",
            "features": list(self.features),
            "mean": list(self.score.mean),
            "scale": list(self.score.scale),
            "coef": list(self.score.coef),
            "intercept": self.score.intercept,
            "isotonic": self.isotonic.to_dict(),
            "auto_accept_threshold": self.auto_accept_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorrectnessModel:
        feats = tuple(str(f) for f in data["features"])
        unknown = [f for f in feats if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown correctness-model features {unknown}; refit with `nhs-lookup fit`")
        vecs = [tuple(float(v) for v in data[k]) for k in ("mean", "scale", "coef")]
        if any(len(v) != len(feats) for v in vecs):
            raise ValueError("correctness model coefficients do not match its feature list")
        t = data.get("auto_accept_threshold")
        return cls(
            feats,
            LogisticScore(*vecs, float(data["intercept"])),
            IsotonicCalibrator.from_dict(dict(data["isotonic"])),
            None if t is None else float(t),
        )


Calibration = IsotonicCalibrator | CorrectnessModel


def calibration_from_dict(data: dict[str, Any]) -> Calibration:
    """Either stored calibration (format 1 files hold the isotonic map on the raw confidence)."""
    if data.get("method") == "logistic+isotonic":
        return CorrectnessModel.from_dict(data)
    return IsotonicCalibrator.from_dict(data)
