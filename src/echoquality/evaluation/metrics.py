"""Binary classification metrics for the quality model (pure functions on numpy arrays).

Label 1 = good quality, score = sigmoid(logit). Threshold metrics are reported at 0.5 AND at
the inference PASS threshold (0.3 by default): the original trained and reported at 0.5 but
deployed at 0.3. Ranking metrics (ROC AUC, PR AUC) are None when only one class is present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from echoquality.scoring import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class ThresholdMetrics:
    threshold: float
    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    tp: int
    fp: int
    tn: int
    fn: int


@dataclass
class MetricsReport:
    """Everything reported for one set of predictions."""

    n: int
    n_positive: int
    loss: float | None
    roc_auc: float | None
    pr_auc: float | None
    at: dict[str, ThresholdMetrics] = field(default_factory=dict)  # "0.5" -> metrics

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """Flat name -> value for logging (e.g. MLflow), skipping undefined values."""
        out: dict[str, float] = {}
        for name in ("loss", "roc_auc", "pr_auc"):
            v = getattr(self, name)
            if v is not None:
                out[f"{prefix}{name}"] = float(v)
        for key, m in self.at.items():
            for name in ("accuracy", "precision", "recall", "specificity", "f1"):
                out[f"{prefix}{name}_at_{key}"] = float(getattr(m, name))
        return out


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def threshold_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> ThresholdMetrics:
    """Confusion counts and rates with 'score >= threshold' meaning predicted good (like PASS)."""
    y = np.asarray(y_true).astype(int)
    pred = (np.asarray(y_prob, dtype=float) >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    return ThresholdMetrics(
        threshold=float(threshold),
        accuracy=_safe_div(tp + tn, len(y)),
        precision=precision,
        recall=recall,
        specificity=_safe_div(tn, tn + fp),
        f1=_safe_div(2 * precision * recall, precision + recall),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def ranking_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[float | None, float | None]:
    """(ROC AUC, PR AUC = average precision), None when a class is missing."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true).astype(int)
    if y.size == 0 or y.min() == y.max():
        return None, None
    return float(roc_auc_score(y, y_prob)), float(average_precision_score(y, y_prob))


def evaluate_predictions(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] = (0.5, DEFAULT_THRESHOLD),
    loss: float | None = None,
) -> MetricsReport:
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in shape")
    roc, pr = ranking_metrics(y, p)
    return MetricsReport(
        n=int(y.size),
        n_positive=int(y.sum()),
        loss=loss,
        roc_auc=roc,
        pr_auc=pr,
        at={f"{t:g}": threshold_metrics(y, p, t) for t in thresholds},
    )


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float
    n_valid: int  # resamples where the metric was defined


def fast_roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC via the Mann-Whitney rank statistic (ties averaged); equals sklearn's value."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fast_average_precision(y: np.ndarray, p: np.ndarray) -> float | None:
    """Average precision (step-wise PR AUC over distinct thresholds), as sklearn computes it."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return None
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], ys.size - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _flat_fast(y: np.ndarray, p: np.ndarray, thresholds: Sequence[float]) -> dict[str, float]:
    """The ``MetricsReport.flat()`` keys (without loss), computed with numpy only (bootstrap speed)."""
    out: dict[str, float] = {}
    roc, ap = fast_roc_auc(y, p), fast_average_precision(y, p)
    if roc is not None:
        out["roc_auc"] = roc
    if ap is not None:
        out["pr_auc"] = ap
    for t in thresholds:
        m = threshold_metrics(y, p, t)
        for name in ("accuracy", "precision", "recall", "specificity", "f1"):
            out[f"{name}_at_{t:g}"] = float(getattr(m, name))
    return out


def bootstrap_ci(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] = (0.5, DEFAULT_THRESHOLD),
    n_resamples: int = 1000,
    seed: int = 42,
    level: float = 0.95,
) -> dict[str, Interval]:
    """Percentile bootstrap CIs (resampling clips with replacement) for the flat metrics.

    Resamples with a single class are skipped for the ranking metrics (AUC undefined there).
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_prob, dtype=float)
    point = evaluate_predictions(y, p, thresholds).flat()
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_resamples):
        idx = rng.integers(0, y.size, size=y.size)
        for k, v in _flat_fast(y[idx], p[idx], thresholds).items():
            if k in samples:
                samples[k].append(v)
    alpha = (1 - level) / 2
    out = {}
    for k, est in point.items():
        vals = np.asarray(samples[k])
        if vals.size == 0:
            continue
        out[k] = Interval(
            estimate=float(est),
            lower=float(np.quantile(vals, alpha)),
            upper=float(np.quantile(vals, 1 - alpha)),
            n_valid=int(vals.size),
        )
    return out
