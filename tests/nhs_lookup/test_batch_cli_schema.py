"""One column set for the `nhs-lookup batch` CSV, a web job's results CSV and the mapping export
(issue 14 item 8): review flags with reasons, no confidence on a no-match, and a batch CSV that
reads back as a case file and as an upload to the review app."""

from __future__ import annotations

import csv
import io
import time

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nhs_lookup.cases import load_cases
from nhs_lookup.cli import app
from nhs_lookup.records import RESULT_COLUMNS
from nhs_lookup.service import ServiceSettings, create_app
from nhs_lookup.service.exports import CSV_COLUMNS, RESULT_CSV_COLUMNS

runner = CliRunner()
INPUT = (
    "DATA_SOURCE,MODALITY_CODE,EXAM_CODE,EXAM_NAME\n"
    "H1,CT,C1,CT Abdo/Pelvis C+\n"
    "H1,CT,C2,Patient Did Not Attend\n"
    "H1,MR,C3,CT Head\n"  # RIS says MR, the name says CT: modality mismatch
    "H1,XR,C4,XR Knee\n"
)


def _batch(tmp_path) -> list[dict[str, str]]:
    src = tmp_path / "ris.csv"
    src.write_text(INPUT)
    out = tmp_path / "mapped.csv"
    env = {"NHS_LOOKUP_CACHE": str(tmp_path / "cache")}
    res = runner.invoke(app, ["batch", str(src), str(out)], env=env)
    assert res.exit_code == 0, res.output
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
        return list(reader)


def test_one_column_set_for_batch_job_results_and_export():
    assert RESULT_CSV_COLUMNS[1 : 1 + len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)
    assert CSV_COLUMNS[: len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)


def test_batch_csv_flags_rows_and_gives_no_confidence_to_no_matches(tmp_path):
    rows = {r["exam_name"]: r for r in _batch(tmp_path)}
    dna = rows["Patient Did Not Attend"]
    assert dna["status"] == "no_match" and dna["proposed_name"] == "" and dna["confidence"] == ""
    assert dna["needs_review"] == "True" and "engine_no_match" in dna["flags"].split("|")
    assert "engine_no_match: the engine found no acceptable catalogue row" in dna["flag_reasons"]
    head = rows["CT Head"]
    assert head["status"] == "proposed" and head["proposed_name"]
    assert "modality_mismatch" in head["flags"] and head["needs_review"] == "True"
    for r in rows.values():
        if r["status"] == "proposed" and float(r["confidence"]) < 0.7:
            assert "low_confidence" in r["flags"] and r["needs_review"] == "True"
        assert (r["needs_review"] == "True") == bool(r["flags"])


def test_batch_csv_reads_back_as_cases_and_as_a_review_upload(tmp_path, sample_engine):
    rows = _batch(tmp_path)
    path = tmp_path / "mapped.csv"
    cases, errors = load_cases(path)
    assert not errors and [c.query.exam_name for c in cases] == [r["exam_name"] for r in rows]
    assert [c.query.modality_code for c in cases] == ["CT", "CT", "MR", "XR"]
    assert not any(c.labelled for c in cases)  # a proposal is not a gold label

    settings = ServiceSettings(db_url=f"sqlite:///{tmp_path / 'service.db'}")
    with TestClient(create_app(settings, engine=sample_engine), base_url="http://127.0.0.1:8000") as client:
        r = client.post("/batch", files={"file": ("mapped.csv", path.read_bytes(), "text/csv")})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        for _ in range(600):
            job = client.get(f"/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        assert job["status"] == "done" and job["processed"] == len(rows) and not job["row_errors"]
        back = list(csv.DictReader(io.StringIO(client.get(f"/jobs/{job_id}/results?format=csv").text)))
    assert [b["proposed_name"] for b in back] == [r["proposed_name"] for r in rows]
    assert [b["needs_review"] for b in back] == [r["needs_review"] for r in rows]


def test_batch_reads_a_semicolon_csv_with_the_sites_column_names(tmp_path):
    src = tmp_path / "site.csv"
    src.write_text("Site;Mod;Procedure\nH1;CT;CT Head\nH1;XR;XR Knee\n")
    env = {"NHS_LOOKUP_CACHE": str(tmp_path / "cache")}
    res = runner.invoke(app, ["batch", str(src), "-o", str(tmp_path / "a.csv")], env=env)
    assert res.exit_code == 2 and "--name-column" in res.output  # says how to name the column
    args = ["batch", str(src), "-o", str(tmp_path / "a.csv"), "--name-column", "Procedure"]
    res = runner.invoke(app, [*args, "--modality-column", "mod"], env=env)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert [(r["exam_name"], r["modality_code"]) for r in rows] == [("CT Head", "CT"), ("XR Knee", "XR")]
