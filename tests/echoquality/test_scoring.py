"""Score bands and PASS/FAIL status (pure functions)."""

from __future__ import annotations

import pytest

from echoquality.scoring import CRITICAL_ASSESSMENT, assessment_for, status_for, validate_threshold


@pytest.mark.parametrize(
    ("score", "text"),
    [
        (1.0, "Excellent quality"),
        (0.8, "Excellent quality"),
        (0.7999, "Good quality"),
        (0.6, "Good quality"),
        (0.5999, "Acceptable quality, but may have minor issues"),
        (0.3, "Acceptable quality, but may have minor issues"),
        (0.2999, "Poor quality - likely issues with clarity, contrast, or positioning"),
        (0.2, "Poor quality - likely issues with clarity, contrast, or positioning"),
        (0.1999, "Very poor quality - significant issues with image acquisition"),
        (0.1, "Very poor quality - significant issues with image acquisition"),
        (0.0999, "Critical issues - may include artifacts, improper view, or technical errors"),
        (0.0, "Critical issues - may include artifacts, improper view, or technical errors"),
    ],
)
def test_assessment_bands_boundaries(score: float, text: str) -> None:
    assert assessment_for(score) == text


def test_critical_constant_matches_lowest_band() -> None:
    assert assessment_for(0.05) == CRITICAL_ASSESSMENT


@pytest.mark.parametrize(
    ("score", "threshold", "status"),
    [(0.3, 0.3, "PASS"), (0.2999, 0.3, "FAIL"), (0.5, 0.5, "PASS"), (0.49, 0.5, "FAIL"), (0.0, 0.0, "PASS")],
)
def test_status_threshold_inclusive(score: float, threshold: float, status: str) -> None:
    assert status_for(score, threshold) == status


def test_default_threshold_is_point_three() -> None:
    assert status_for(0.3) == "PASS"
    assert status_for(0.29) == "FAIL"


def test_bands_do_not_move_with_threshold() -> None:
    # a FAIL at threshold 0.7 can still be "Good quality": the text bands are fixed
    assert status_for(0.65, 0.7) == "FAIL"
    assert assessment_for(0.65) == "Good quality"


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_validate_threshold_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        validate_threshold(bad)
    assert validate_threshold(0.45) == 0.45
