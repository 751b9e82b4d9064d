"""The one metrics module on hand-built outcomes."""

import pytest

from nhs_lookup.metrics import (
    NO_MATCH,
    CaseOutcome,
    auto_accept,
    calibration_bands,
    expected_calibration_error,
    grouped,
    summarize,
    with_fixed_threshold,
)


def _o(i, rank, conf, *, gold_nm=False, predicted="CT Head", reason=None, source="A"):
    return CaseOutcome(
        case_index=i,
        exam_name=f"name {i}",
        data_source=source,
        modality_code="CT",
        expected=(NO_MATCH,) if gold_nm else ("CT Head",),
        predicted=predicted,
        confidence=conf,
        correct_rank=rank,
        no_match_reason=reason,
    )


def test_summary_counts_topk_mrr_and_no_match():
    outs = [
        _o(0, 1, 0.95),
        _o(1, 2, 0.6),
        _o(2, None, 0.3),
        _o(3, 1, 0.0, gold_nm=True, predicted=None, reason="non_clinical"),  # right abstention
        _o(4, None, 0.2, predicted=None, reason="low_confidence"),  # wrong abstention
        _o(5, None, 0.9, gold_nm=True),  # missed no-match
    ]
    m = summarize(outs)
    assert m.cases == 6
    assert m.top1 == pytest.approx(2 / 6) and m.top5 == pytest.approx(3 / 6)
    assert m.mrr == pytest.approx((1 + 0.5 + 1) / 6)
    assert m.no_match_precision == pytest.approx(1 / 2)  # 2 abstentions, 1 gold no-match
    assert m.no_match_recall == pytest.approx(1 / 2)  # 2 gold no-matches, 1 found
    assert m.coverage == pytest.approx(4 / 6)


def test_answer_confidence_of_abstentions():
    assert _o(0, None, 0.2, predicted=None, reason="low_confidence").answer_confidence == pytest.approx(0.8)
    assert _o(0, 1, 0.0, gold_nm=True, predicted=None, reason="non_clinical").answer_confidence == 1.0
    assert _o(0, 1, 0.7).answer_confidence == 0.7


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    calibrated = [(0.75, True)] * 3 + [(0.75, False)]
    assert expected_calibration_error(calibrated) == pytest.approx(0.0)
    overconfident = [(0.95, False)] * 4
    assert expected_calibration_error(overconfident) == pytest.approx(0.95)
    assert expected_calibration_error([]) is None


def test_auto_accept_takes_the_lowest_threshold_reaching_the_precision():
    pairs = [(0.99, True)] * 50 + [(0.9, True)] * 49 + [(0.9, False)] + [(0.5, False)] * 10
    cov, t = auto_accept(pairs, 0.99)
    assert t == 0.9 and cov == pytest.approx(100 / 110)
    cov, t = auto_accept(pairs, 1.0)
    assert t == 0.99 and cov == pytest.approx(50 / 110)
    assert auto_accept([(0.9, False)], 0.99) == (0.0, None)
    # coverage is a share of all cases when only matched answers are candidates
    assert auto_accept([(0.9, True)], 0.99, total=4) == (0.25, 0.9)


def test_one_band_table_and_groups():
    outs = [_o(0, 1, 0.95), _o(1, None, 0.95), _o(2, 1, 0.6, source="B")]
    bands = {b.band: b for b in calibration_bands(outs)}
    assert list(bands) == ["0.90-1.00", "0.70-0.90", "0.50-0.70", "0.00-0.50"]
    assert bands["0.90-1.00"].labelled == 2 and bands["0.90-1.00"].accuracy == 0.5
    assert bands["0.50-0.70"].accuracy == 1.0 and bands["0.00-0.50"].accuracy is None
    groups = grouped(outs, lambda o: o.data_source)
    assert groups["A"].labelled == 2 and groups["A"].top1_accuracy == 0.5 and groups["B"].top1 == 1


def test_fixed_threshold_auto_accept_is_judged_on_these_outcomes_beside_the_oracle():
    outs = [_o(0, 1, 0.99), _o(1, 1, 0.95), _o(2, None, 0.93), _o(3, 1, 0.9), _o(4, 1, 0.5)]
    oracle = summarize(outs)
    assert oracle.auto_accept_coverage == pytest.approx(0.4)  # 0.95 and up: 2/2 right
    m = with_fixed_threshold(summarize(outs), outs, 0.9)  # a threshold chosen elsewhere
    assert m.auto_accept_coverage == pytest.approx(0.8)  # 4 answers at or above 0.9 ...
    assert m.auto_accept_precision == pytest.approx(0.75)  # ... of which 3 are right
    assert m.auto_accept_oracle_coverage == pytest.approx(0.4) and m.auto_accept_threshold == 0.9
    none = with_fixed_threshold(summarize(outs), outs, None)
    assert none.auto_accept_coverage == 0.0 and none.auto_accept_precision is None
