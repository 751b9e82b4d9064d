"""``echoquality.metrics``: the stable import path of :mod:`echoquality.evaluation.metrics`.

Charts import the metrics from here; new code imports ``echoquality.evaluation.metrics``.
"""

from echoquality.evaluation.metrics import (
    Interval,
    MetricsReport,
    ThresholdMetrics,
    bootstrap_ci,
    evaluate_predictions,
    fast_average_precision,
    fast_roc_auc,
    ranking_metrics,
    threshold_metrics,
)

__all__ = [
    "Interval",
    "MetricsReport",
    "ThresholdMetrics",
    "bootstrap_ci",
    "evaluate_predictions",
    "fast_average_precision",
    "fast_roc_auc",
    "ranking_metrics",
    "threshold_metrics",
]
