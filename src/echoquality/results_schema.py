"""The results schema, in one place: ``results.csv`` columns and the skip-reason keys of the JSON files.

Skip reasons are the values of :class:`echoquality.dicom.SkipReason`; the original tool's six categories
come first in ``error_counts`` (compatibility), then the reasons this implementation adds, in enum order.
``outputs`` writes with these, ``results_table`` reads with them.
"""

from __future__ import annotations

from echoquality.dicom.eligibility import SkipReason

#: The original tool's error categories, always present in ``error_counts`` (compatibility) ...
ORIGINAL_ERROR_KEYS: tuple[str, ...] = (
    SkipReason.NOT_DICOM.value,
    SkipReason.EMPTY_PIXEL_ARRAY.value,
    SkipReason.INVALID_DIMENSIONS.value,
    SkipReason.MASKING_ERROR.value,
    SkipReason.SCALING_ERROR.value,
    SkipReason.OTHER_ERRORS.value,
)
#: ... plus the reasons this implementation adds.
NEW_ERROR_KEYS: tuple[str, ...] = tuple(r.value for r in SkipReason if r.value not in ORIGINAL_ERROR_KEYS)
ALL_ERROR_KEYS: tuple[str, ...] = ORIGINAL_ERROR_KEYS + NEW_ERROR_KEYS

#: ``results.csv``: one row per file, scored or skipped.
CSV_COLUMNS: tuple[str, ...] = (
    "folder",
    "key",
    "file_id",
    "path",
    "machine_type",
    "manufacturer",
    "model",
    "patient_id",
    "num_frames",
    "fps",
    "photometric",
    "transfer_syntax",
    "score",
    "status",
    "assessment",
    "skip_reason",
    "skip_detail",
)

#: A skip detail longer than this is cut (some decoder messages quote the whole corrupt value, which
#: once produced a results.csv field over the csv module's 128 KiB limit).
MAX_DETAIL_CHARS = 1000


def short_detail(detail: str | None) -> str | None:
    """*detail* cut to :data:`MAX_DETAIL_CHARS`, saying how long it was."""
    if detail is None or len(detail) <= MAX_DETAIL_CHARS:
        return detail
    return f"{detail[:MAX_DETAIL_CHARS]}... ({len(detail)} characters in all)"
