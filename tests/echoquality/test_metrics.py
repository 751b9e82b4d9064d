"""Pure metric functions and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from echoquality.evaluation.metrics import (
    bootstrap_ci,
    evaluate_predictions,
    fast_average_precision,
    fast_roc_auc,
    threshold_metrics,
)


def test_threshold_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.2, 0.35, 0.1, 0.6, 0.05])
    m = threshold_metrics(y, p, 0.5)
    assert (m.tp, m.fn, m.fp, m.tn) == (1, 2, 1, 3)
    assert m.precision == pytest.approx(0.5)
    assert m.recall == pytest.approx(1 / 3)
    assert m.accuracy == pytest.approx(4 / 7)
    assert m.f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    m3 = threshold_metrics(y, p, 0.3)  # the PASS threshold: score >= 0.3 counts as good
    assert (m3.tp, m3.fn, m3.fp, m3.tn) == (2, 1, 2, 2)
    assert threshold_metrics(y, np.array([0.3] * 7), 0.3).tp == 3  # boundary is inclusive


def test_report_both_thresholds_and_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    r = evaluate_predictions(y, p, (0.5, 0.3), loss=0.42)
    assert set(r.at) == {"0.5", "0.3"}
    assert r.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert r.pr_auc == pytest.approx(average_precision_score(y, p))
    flat = r.flat("val_")
    assert flat["val_loss"] == 0.42 and "val_f1_at_0.3" in flat and "val_roc_auc" in flat


def test_one_class_has_no_auc():
    r = evaluate_predictions([1, 1, 1], [0.2, 0.7, 0.9])
    assert r.roc_auc is None and r.pr_auc is None
    assert "roc_auc" not in r.flat()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_ranking_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    p = np.round(rng.random(150), 1)  # many ties
    assert fast_roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert fast_average_precision(y, p) == pytest.approx(average_precision_score(y, p))


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.35 * y + 0.65 * rng.random(80), 0, 1)
    ci = bootstrap_ci(y, p, n_resamples=400, seed=5)
    assert {"roc_auc", "pr_auc", "accuracy_at_0.5", "f1_at_0.3"} <= set(ci)
    for name, iv in ci.items():
        assert iv.lower <= iv.estimate <= iv.upper, name
        assert iv.lower < iv.upper or name.startswith(("precision", "recall", "specificity"))
    assert ci["roc_auc"].estimate == pytest.approx(roc_auc_score(y, p))
    again = bootstrap_ci(y, p, n_resamples=400, seed=5)
    assert again == ci
    wider = bootstrap_ci(y[:20], p[:20], n_resamples=400, seed=5)
    assert (wider["roc_auc"].upper - wider["roc_auc"].lower) > (ci["roc_auc"].upper - ci["roc_auc"].lower)
