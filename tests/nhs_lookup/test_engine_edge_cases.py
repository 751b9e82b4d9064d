"""Edge cases found while reviewing answers on real unlabelled RIS names."""

from __future__ import annotations

import numpy as np

from nhs_lookup.records import ExamQuery


def test_admission_type_is_noise_not_a_non_clinical_entry(sample_engine):
    result = sample_engine.lookup(ExamQuery("Day Stay PICC line Insertion", modality_code="IR"))
    assert result.no_match_reason != "non_clinical"
    assert result.matched and "picc" in result.best.entry.name.lower()


def test_name_with_nothing_left_after_noise_is_an_explicit_no_match(sample_engine):
    for name in ("Day Stay", "Ward", "(Y) - NO REPORT"):
        result = sample_engine.lookup(ExamQuery(name, modality_code="US"))
        assert not result.matched, name
        assert result.no_match_reason == "not_in_catalogue", name


def test_equal_scores_rank_by_catalogue_row_whatever_the_path(sample_engine):
    names = ["CT Head", "XR Chest", "US Abdomen", "MRI Knee Lt", "CT Facial bones"]
    queries = [ExamQuery(n) for n in names]
    single = [sample_engine.lookup(q) for q in queries]
    batch = sample_engine.lookup_many(queries)
    for a, b in zip(single, batch, strict=True):
        assert [c.entry.row_id for c in a.candidates] == [c.entry.row_id for c in b.candidates]
    for r in single:
        scores = np.round([c.score for c in r.candidates], 6)
        rows = [c.entry.row_id for c in r.candidates]
        for i in range(len(rows) - 1):
            if scores[i] == scores[i + 1]:
                assert rows[i] < rows[i + 1]
