"""`nhs-lookup serve` command line, service settings files, and the pure review/export rules."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nhs_lookup.cli import app
from nhs_lookup.records import ExamQuery
from nhs_lookup.service import exports
from nhs_lookup.service.review import MappingKey, auto_status, band_of, modality_disagrees
from nhs_lookup.service.settings import ReviewRules, load_config_file

runner = CliRunner()


def test_serve_help_documents_every_option():
    result = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in [
        "--host",
        "--port",
        "--db",
        "--catalogue",
        "--config",
        "--api-key",
        "--max-upload-mb",
        "--resume",
        "--no-resume",
        "--job-chunk-size",
        "NHS_LOOKUP_API_KEY",
        "127.0.0.1",
    ]:
        assert option in result.output, option


def test_serve_usage_errors_exit_2(tmp_path):
    missing = runner.invoke(app, ["serve", "--catalogue", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "catalogue file not found" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("review:\n  low_confidence: 0.5\n")
    r = runner.invoke(app, ["serve", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown key(s) in review: low_confidence" in r.output
    assert runner.invoke(app, ["serve", "--port", "70000"]).exit_code == 2


def test_config_file_with_review_section(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "top_k_results: 7\nscoring:\n  exact_match_bonus: 0.3\n"
        "review:\n  low_confidence_below: 0.8\n  flag_singletons: false\n"
    )
    config, rules = load_config_file(path)
    assert config.top_k_results == 7 and config.scoring.exact_match_bonus == 0.3
    assert rules == ReviewRules(low_confidence_below=0.8, flag_singletons=False)
    plain = tmp_path / "plain.yaml"
    plain.write_text("top_k_results: 3\n")
    assert load_config_file(plain)[1] == ReviewRules()
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "missing.yaml")


def test_mapping_key_ignores_case_and_spacing_but_not_source_or_code():
    a = MappingKey.of("Hospital A", "CT1", "CT  Head ")
    assert a == MappingKey.of(" hospital a", "ct1", "ct head")
    assert a.digest == MappingKey.of("HOSPITAL A", "CT1", "Ct Head").digest
    assert a.digest != MappingKey.of("Hospital B", "CT1", "CT Head").digest
    assert a.digest != MappingKey.of("Hospital A", "CT2", "CT Head").digest
    assert MappingKey.of(None, None, "x") == MappingKey.of("", "  ", "X")


@pytest.mark.parametrize(
    ("ris", "target", "disagrees"),
    [
        ("Mamm", "US", True),
        ("MR", "MRI", False),
        ("MR", "MR", False),
        ("CR", "XR", False),
        ("CT", "MRI", True),
        ("XA", "FL", False),  # angiography suites do fluoroscopy
        ("NM", "PET", False),
        ("ZZZ", "CT", False),  # unknown code: no evidence either way
        (None, "CT", False),
        ("CT", None, False),
    ],
)
def test_modality_disagreement_rule(ris, target, disagrees):
    assert modality_disagrees(ris, target) is disagrees


def test_status_and_bands():
    assert auto_status([]) == "unreviewed"
    assert auto_status(["singleton"]) == "unreviewed"  # informational only
    assert auto_status(["singleton", "ambiguous"]) == "flagged"
    assert [band_of(x) for x in (0.95, 1.0, 0.9, 0.75, 0.5, 0.2, None)] == [
        "high",
        "high",
        "high",
        "review",
        "manual",
        "low",
        None,
    ]


def _row(**kw) -> exports.ExportRow:
    base = dict(
        data_source="H/1 &",
        exam_code="C1",
        exam_name="XR Knee Lt",
        modality_code="XR",
        status="approved",
        target_name="XR Knee Lt",
        nicip_code="XKNEL",
        snomed_id="123",
        snomed_fsn="Plain X-ray of knee (procedure)",
        laterality_id="7771000",
        laterality="Left (qualifier value)",
        equivalence="equivalent",
        confidence=0.9,
        flags=("singleton",),
        reviewer="ann",
        decided_at="2026-01-01T00:00:00Z",
        comment=None,
    )
    base.update(kw)
    return exports.ExportRow(**base)


def test_fhir_conceptmap_structure_from_rows():
    rows = [
        _row(),
        _row(exam_code=None, exam_name="DNA", status="no_match", target_name=None, snomed_id=None),
        _row(data_source="H2", exam_code="R1", snomed_id=None, target_name="RadLex row", laterality_id=None),
    ]
    cm = exports.to_fhir_concept_map(rows, scope="approved", generated_at="2026-01-01T00:00:00Z")
    groups = {(g["source"], g["target"]): g for g in cm["group"]}
    assert set(groups) == {
        ("urn:nhs-lookup:ris:H%2F1%20%26", "http://snomed.info/sct"),
        ("urn:nhs-lookup:ris:H2", "urn:nhs-lookup:catalogue"),
    }
    knee, dna = groups[("urn:nhs-lookup:ris:H%2F1%20%26", "http://snomed.info/sct")]["element"]
    assert knee["code"] == "C1" and knee["target"][0]["code"] == "123"
    assert knee["target"][0]["product"][0]["value"] == "7771000"
    assert "NICIP XKNEL" in knee["target"][0]["comment"]
    assert dna["code"] == "DNA" and dna["target"] == [
        {"equivalence": "unmatched", "comment": "reviewed: no catalogue procedure matches (status no_match)"}
    ]
    fhir = pytest.importorskip("fhir.resources.R4B.conceptmap", reason="fhir.resources not installed")
    fhir.ConceptMap.model_validate(cm)


def test_summary_counts():
    counts = [
        ("A", "approved", 3),
        ("A", "flagged", 2),
        ("A", "deferred", 1),
        ("A", "no_match", 1),
        (None, "rejected", 4),
    ]
    s = {x.data_source: x for x in exports.summarize(counts)}
    assert (s["A"].approved, s["A"].needs_review, s["A"].no_match, s["A"].total) == (3, 3, 1, 7)
    assert (s["(none)"].needs_review, s["(none)"].total) == (4, 4)


def test_proposal_flags_on_real_results(sample_engine):
    from nhs_lookup.service.review import proposal_flags

    result = sample_engine.lookup(ExamQuery("Patient Did Not Attend", "XR"))
    assert "engine_no_match" in proposal_flags(result, ReviewRules())
    good = sample_engine.lookup(ExamQuery("MRI Knee Lt", "MR"))
    assert good.best is not None
    assert "low_confidence" in proposal_flags(good, ReviewRules(low_confidence_below=good.confidence + 0.01))
    assert "low_confidence" not in proposal_flags(
        good, ReviewRules(low_confidence_below=good.confidence - 0.01)
    )
    assert "engine_no_match" not in proposal_flags(good, ReviewRules())
    assert "modality_mismatch" not in proposal_flags(good, ReviewRules())
    wrong_code = sample_engine.lookup(ExamQuery("MRI Knee Lt", "CT"))
    assert wrong_code.best is not None and wrong_code.best.entry.components.modality == "MRI"
    assert "modality_mismatch" in proposal_flags(wrong_code, ReviewRules())
    assert "modality_mismatch" not in proposal_flags(wrong_code, ReviewRules(flag_modality_mismatch=False))


def test_busy_port_exits_1_with_a_hint(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        res = runner.invoke(
            app,
            ["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 's.db'}"],
            env={"COLUMNS": "200"},
        )
    assert res.exit_code == 1, res.output
    assert f"127.0.0.1:{port}" in res.output and "--port" in res.output
