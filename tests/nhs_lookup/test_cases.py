"""Case files: JSON/CSV, labelled or not, per-row errors, and the gold-judging rule."""

from __future__ import annotations

import json

import pytest

from nhs_lookup.cases import CaseFileError, correct_rank, iter_cases, load_cases
from nhs_lookup.records import Candidate, CatalogueEntry, Components, ExamQuery, LookupResult


def _result(best: str | None, others: tuple[str, ...] = ()) -> LookupResult:
    names = ([best] if best else []) + list(others)
    cands = [
        Candidate(entry=CatalogueEntry(row_id=i, name=n), score=1.0 - i * 0.1) for i, n in enumerate(names)
    ]
    return LookupResult(
        query=ExamQuery("x"),
        components=Components(),
        best=cands[0] if best else None,
        confidence=0.9 if best else 0.0,
        candidates=cands
        if best
        else [Candidate(entry=CatalogueEntry(row_id=9, name=n), score=0.1) for n in others],
    )


def test_json_gold_and_ris_formats(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            [
                {
                    "case_id": "A1",
                    "DATA_SOURCE": "Site A",
                    "MODALITY_CODE": "CT",
                    "EXAM_CODE": "CAB+  ",
                    "EXAM_NAME": " CT Abdo/Pelvis C+ ",
                    "acceptable": ["CT Abdomen and pelvis with contrast"],
                    "no_match": False,
                    "no_match_reason": None,
                },
                {"exam_name": "Did Not Arrive", "no_match": True, "no_match_reason": "non_clinical"},
                {"EXAM_NAME": "XR Chest"},
            ]
        )
    )
    cases = list(iter_cases(path))
    assert [c.query.exam_name for c in cases] == ["CT Abdo/Pelvis C+", "Did Not Arrive", "XR Chest"]
    assert cases[0].query.exam_code == "CAB+"  # padded RIS codes are trimmed
    assert cases[0].acceptable == ("CT Abdomen and pelvis with contrast",)
    assert cases[1].no_match and cases[1].no_match_reason == "non_clinical"
    assert cases[2].labelled is False


def test_bad_rows_are_reported_and_the_rest_kept(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps([{"EXAM_NAME": "US Pelvis"}, {"EXAM_NAME": ""}, ["not", "a", "dict"], {"x": 1}])
    )
    cases, errors = load_cases(path)
    assert [c.query.exam_name for c in cases] == ["US Pelvis"]
    assert [e.row for e in errors] == [2, 3, 4]
    assert "EXAM_NAME" in errors[0].message


def test_csv_with_pipe_separated_acceptable(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("EXAM_NAME,MODALITY_CODE,acceptable\nXR Wrist Lt,XR,XR Wrist Lt|XR Wrist Both\n,XR,\n")
    cases, errors = load_cases(path)
    assert cases[0].acceptable == ("XR Wrist Lt", "XR Wrist Both")
    assert len(errors) == 1 and errors[0].row == 2


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("{not json", ".json", "not valid JSON"),
        ('{"a": 1}', ".json", "expected a JSON list"),
        ("name,code\nx,y\n", ".csv", "no EXAM_NAME column"),
        ("whatever", ".xml", "unsupported case file type"),
    ],
)
def test_unreadable_files_raise_clear_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"cases{suffix}"
    path.write_text(content)
    with pytest.raises(CaseFileError, match=message):
        list(iter_cases(path))


def test_missing_file(tmp_path):
    with pytest.raises(CaseFileError, match="not found"):
        list(iter_cases(tmp_path / "nope.json"))


def test_correct_rank_rules():
    from nhs_lookup.records import Case

    case = Case(query=ExamQuery("XR Wrist"), acceptable=("XR Wrist Both", "XR Wrist"))
    assert correct_rank(_result("XR Wrist"), case) == 1
    assert correct_rank(_result("XR Hand", ("XR Wrist Both",)), case) == 2
    assert correct_rank(_result("XR Hand", ("XR Finger",)), case) is None
    no_match = Case(query=ExamQuery("Did not attend"), no_match=True)
    assert correct_rank(_result(None), no_match) == 1
    assert correct_rank(_result("XR Hand"), no_match) is None
    # A wrong no-match still lets a correct alternative count for top-k, but never at rank 1.
    assert correct_rank(_result(None, ("XR Wrist",)), case) == 2
