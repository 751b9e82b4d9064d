"""`validate`: metrics on the real engine, consistency grouping, and the CI exit code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nhs_lookup.cli import app
from nhs_lookup.framework.paths import SAMPLE_CASES
from nhs_lookup.framework.validate import component_agreement, preprocessing_consistency, ris_modality
from nhs_lookup.records import Case, Components, ExamQuery


def test_ris_codes_map_to_canonical_modalities():
    assert ris_modality("MR") == "MRI"
    assert ris_modality("Mamm") == "MG"
    assert ris_modality("CT") == "CT"
    assert ris_modality(None) is None


def test_consistency_groups_come_from_gold_not_from_a_fixed_list():
    def case(name: str, gold: str) -> Case:
        return Case(ExamQuery(name), acceptable=(gold,))

    ct = Components(modality="CT", anatomy=("head",))
    ct_contrast = Components(modality="CT", anatomy=("head",), contrast="with")
    xr = Components(modality="XR", anatomy=("chest",))
    cases = [case("CT Head", "CT Head"), case("CT Brain", "CT Head"), case("Chest PA", "XR Chest")]
    assert preprocessing_consistency(cases, [ct, ct, xr]) == (1.0, 1)  # the XR group has one name only
    score, groups = preprocessing_consistency(cases, [ct, ct_contrast, xr])
    assert groups == 1 and score == pytest.approx(component_agreement(ct, ct_contrast)) == pytest.approx(0.8)


def test_validate_command_reports_metrics_and_gates_on_min_accuracy(tmp_path, engine_cache_dir, monkeypatch):
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))
    args = ["validate", "--sanity-test-path", str(SAMPLE_CASES), "--report-json", str(tmp_path / "v.json")]
    ok = CliRunner().invoke(app, args + ["--min-accuracy", "0"])
    assert ok.exit_code == 0, ok.output
    report = json.loads((tmp_path / "v.json").read_text())
    n = report["labelled"]
    assert n > 0 and len(report["failures"]) == round(n * (1 - report["top1"]))
    for key in (
        "top1",
        "top5",
        "modality_accuracy",
        "laterality_agreement",
        "contrast_agreement",
        "overall_score",
    ):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["top5"] >= report["top1"]

    gate = report["top1"] + 0.01
    failed = CliRunner().invoke(app, args + ["--min-accuracy", str(gate)])
    assert failed.exit_code == 1 and "FAILED" in failed.output


def test_validate_on_shared_sanity_gold(tmp_path, shared_dir, engine_cache_dir, monkeypatch):
    gold = shared_dir / "nhs" / "sanity_gold.json"
    if not gold.is_file():
        pytest.skip(f"{gold} not present")
    monkeypatch.setenv("NHS_LOOKUP_CACHE", str(engine_cache_dir))
    result = CliRunner().invoke(
        app,
        ["validate", "--sanity-test-path", str(gold), "--catalogue", str(shared_dir / "nhs" / "NHS.json"),
         "--min-accuracy", "0", "--report-json", str(tmp_path / "s.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["labelled"] == 94
    # RIS codes of these real sources map properly (MR -> MRI, Mamm -> MG) for every code present
    assert report["modality_by_code"]["MR"]["canonical"] == "MRI"
    assert report["modality_cases"] >= 90
    assert report["consistency_groups"] >= 5  # real names of one exam from several sources
    assert 0.0 <= report["preprocessing_consistency"] <= 1.0
