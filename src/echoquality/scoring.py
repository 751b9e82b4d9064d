"""Score -> PASS/FAIL status and a human assessment (pure functions).

The six assessment bands are fixed by the reference tool so that downstream tools (prepare-data, which
selects training clips by assessment text) keep working; only the PASS threshold is configurable.
"""

from __future__ import annotations

from echoquality.config import InferenceConfig

#: The PASS threshold's default lives in the typed config (``inference.threshold``), nowhere else.
DEFAULT_THRESHOLD: float = InferenceConfig.threshold

# (lower bound, text), highest first; a score falls in the first band whose bound it reaches.
ASSESSMENT_BANDS: tuple[tuple[float, str], ...] = (
    (0.8, "Excellent quality"),
    (0.6, "Good quality"),
    (0.3, "Acceptable quality, but may have minor issues"),
    (0.2, "Poor quality - likely issues with clarity, contrast, or positioning"),
    (0.1, "Very poor quality - significant issues with image acquisition"),
)
CRITICAL_ASSESSMENT = "Critical issues - may include artifacts, improper view, or technical errors"

PASS = "PASS"
FAIL = "FAIL"


def status_for(score: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """ "PASS" when ``score >= threshold``, else "FAIL"."""
    return PASS if score >= threshold else FAIL


def assessment_for(score: float) -> str:
    """The fixed six-band text for *score* (independent of the PASS threshold)."""
    for bound, text in ASSESSMENT_BANDS:
        if score >= bound:
            return text
    return CRITICAL_ASSESSMENT


def validate_threshold(threshold: float) -> float:
    """A threshold must lie in [0, 1]; raises ValueError otherwise."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    return float(threshold)
