"""HTTP API of `nhs-lookup serve` through FastAPI's TestClient, on the REAL engine and the bundled
sample catalogue / labelled sample cases."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nhs_lookup.cases import load_cases
from nhs_lookup.records import ExamQuery
from nhs_lookup.service import ReviewRules, ServiceSettings, create_app

DATA = Path(__file__).resolve().parents[2] / "src" / "nhs_lookup" / "data"
SAMPLE_CASES = DATA / "sample_cases.json"
BASE_URL = (
    "http://127.0.0.1:8000"  # the Host the server accepts (TestClient's default "testserver" is refused)
)


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def make_client(sample_engine, tmp_path):
    """Factory: a TestClient (lifespan started) on a fresh SQLite database, sharing the loaded engine."""
    clients = []

    def make(engine=None, raise_server_exceptions: bool = True, **overrides) -> TestClient:
        settings = ServiceSettings(db_url=f"sqlite:///{tmp_path / 'service.db'}", **overrides)
        app = create_app(settings, engine=engine or sample_engine)
        client = TestClient(app, base_url=BASE_URL, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def loaded(client) -> tuple[TestClient, dict]:
    """A client whose database holds the sample cases, processed by a batch job from an uploaded file."""
    r = client.post(
        "/batch", files={"file": ("sample_cases.json", SAMPLE_CASES.read_bytes(), "application/json")}
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job
    return client, job


def all_mappings(client: TestClient, **params) -> list[dict]:
    page = client.get("/mappings", params={"status": "all", "limit": 500, **params}).json()
    assert page["total"] == len(page["items"])
    return page["items"]


def mapping_for(client: TestClient, exam_name: str) -> dict:
    found = [m for m in all_mappings(client) if m["exam_name"] == exam_name]
    assert len(found) == 1, exam_name
    return found[0]


# ------------------------------------------------------------------ basics
def test_health_and_openapi_docs(client, sample_engine):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["catalogue_rows"] == len(sample_engine.catalogue.entries)
    assert health["api_key_required"] is False
    spec = client.get("/openapi.json").json()
    for path in [
        "/lookup",
        "/batch",
        "/jobs/{job_id}",
        "/jobs/{job_id}/results",
        "/catalogue/search",
        "/mappings",
        "/mappings/{mapping_id}/decision",
        "/mappings/bulk-approve",
        "/export",
        "/summary",
        "/consolidated",
    ]:
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/batch"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_lookup_returns_engine_result_with_components_and_candidates(client, sample_engine):
    r = client.post(
        "/lookup", json={"exam_name": "CT Abdo/Pelvis C+", "modality_code": "CT", "data_source": "H1"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    expected = sample_engine.lookup(ExamQuery("CT Abdo/Pelvis C+", "CT", None, "H1"))
    res = body["result"]
    assert body["remembered"] is False
    assert res["clean_name"] == expected.best.entry.name
    assert res["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
    assert res["components"]["modality"] == expected.components.modality
    assert [c["name"] for c in res["all_candidates"]] == [c.entry.name for c in expected.candidates]
    # the parsed components of each candidate come along for side-by-side review
    assert res["candidate_components"][res["clean_name"]]["modality"] == "CT"
    # the RIS upper-case keys are accepted too
    r2 = client.post("/lookup", json={"EXAM_NAME": "MRI Knee Lt", "MODALITY_CODE": "MR"})
    assert r2.status_code == 200 and r2.json()["result"]["exam_name"] == "MRI Knee Lt"


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"exam_name": ""}, "exam_name", "empty"),
        ({"exam_name": "   "}, "exam_name", "empty"),
        ({"exam_name": "x" * 501}, "exam_name", "500"),
        ({"exam_name": 42}, "exam_name", "string"),
        ({"exam_name": "CT head", "modality_code": ["CT"]}, "modality_code", "string"),
        ({"modality_code": "CT"}, "exam_name", "required"),
        ({"exam_name": "CT head", "colour": "red"}, "colour", "not permitted"),
    ],
)
def test_lookup_validation_errors_are_clear_422s(client, body, field, text):
    r = client.post("/lookup", json=body)
    assert r.status_code == 422
    data = r.json()
    assert any(d["field"] == field and text in d["message"].lower() for d in data["detail"]), data
    assert field in data["error"]


def test_malformed_json_and_unknown_ids(client):
    r = client.post("/lookup", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/jobs/nope").json() == {"error": "no job 'nope'"}
    assert client.get("/mappings/999").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/catalogue/search", params={"q": ""}).status_code == 422


class _ExplodingEngine:
    """Delegates to the real engine but fails on one exam name (an engine bug)."""

    def __init__(self, engine, bad: str) -> None:
        self._engine, self.bad = engine, bad
        self.config, self.catalogue = engine.config, engine.catalogue

    def lookup(self, query, **kw):
        if query.exam_name == self.bad:
            raise RuntimeError("secret internal detail /etc/passwd")
        return self._engine.lookup(query, **kw)

    def lookup_many(self, queries):
        queries = list(queries)
        if any(q.exam_name == self.bad for q in queries):
            raise RuntimeError("secret internal detail")
        return self._engine.lookup_many(queries)

    def search_catalogue(self, text, limit=20):
        return self._engine.search_catalogue(text, limit)


def test_internal_errors_hide_details_and_batch_items_fail_alone(make_client, sample_engine):
    client = make_client(engine=_ExplodingEngine(sample_engine, "Boom exam"), raise_server_exceptions=False)
    r = client.post("/lookup", json={"exam_name": "Boom exam"})
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and "error" in r.json()
    exams = [{"exam_name": "CT Head"}, {"exam_name": "Boom exam"}, {"exam_name": "US Abdo"}]
    job = wait_job(client, client.post("/batch", json={"exams": exams}).json()["id"])
    assert job["status"] == "done" and job["processed"] == 3 and job["failed"] == 1
    items = client.get(f"/jobs/{job['id']}/results").json()["items"]
    assert [i["error"] is None for i in items] == [True, False, True]
    assert items[0]["result"]["clean_name"] == sample_engine.lookup(ExamQuery("CT Head")).best.entry.name


# -------------------------------------------------------------------- batch
def test_batch_json_job_progress_paging_and_csv(client, sample_engine):
    cases, _ = load_cases(SAMPLE_CASES)
    exams = [
        {
            "exam_name": c.query.exam_name,
            "modality_code": c.query.modality_code,
            "exam_code": c.query.exam_code,
            "data_source": c.query.data_source,
        }
        for c in cases
    ]
    r = client.post("/batch", json={"exams": exams, "name": "sample"})
    assert r.status_code == 202
    created = r.json()
    assert created["total"] == len(cases) and created["status"] in ("queued", "running", "done")
    job = wait_job(client, created["id"])
    assert job["status"] == "done" and job["processed"] == len(cases) and job["failed"] == 0
    assert job["progress"] == 1.0 and job["engine"]["catalogue_rows"] == len(sample_engine.catalogue.entries)
    assert (
        job["engine"]["config"]["scoring"]["retriever_top_k"] == sample_engine.config.scoring.retriever_top_k
    )

    page1 = client.get(f"/jobs/{job['id']}/results", params={"offset": 0, "limit": 10}).json()
    page2 = client.get(f"/jobs/{job['id']}/results", params={"offset": 10, "limit": 100}).json()
    items = page1["items"] + page2["items"]
    assert len(page1["items"]) == 10 and [i["row"] for i in items] == list(range(1, len(cases) + 1))
    expected = sample_engine.lookup_many([c.query for c in cases])
    assert [i["result"]["clean_name"] for i in items] == [
        e.best.entry.name if e.best else None for e in expected
    ]

    r = client.get(f"/jobs/{job['id']}/results", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(cases)
    assert [row["exam_name"] for row in rows] == [c.query.exam_name for c in cases]
    assert [row["proposed_name"] or None for row in rows] == [
        e.best.entry.name if e.best else None for e in expected
    ]
    assert client.get(f"/jobs/{job['id']}/results", params={"format": "xml"}).status_code == 422
    assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]


def test_batch_upload_csv_reports_bad_rows_and_processes_the_rest(client):
    text = (
        "DATA_SOURCE,MODALITY_CODE,EXAM_CODE,EXAM_NAME\n"
        "H1,CT,C1,CT Head\n"
        "H1,CT,C2,\n"  # empty name: reported, not fatal
        f"H1,US,C3,{'x' * 600}\n"  # over-long name
        "H1,US,C4,US Abdo\n"
    )
    r = client.post(
        "/batch", files={"file": ("ris.csv", text.encode(), "text/csv")}, data={"name": "ris export"}
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["name"] == "ris export"
    assert job["total"] == 2 and job["processed"] == 2
    assert [e["row"] for e in job["row_errors"]] == [2, 3]
    assert "EXAM_NAME" in job["row_errors"][0]["message"]
    names = [i["exam_name"] for i in client.get(f"/jobs/{job['id']}/results").json()["items"]]
    assert names == ["CT Head", "US Abdo"]


@pytest.mark.parametrize(
    ("filename", "content", "status", "text"),
    [
        ("exams.txt", b"EXAM_NAME\nCT head\n", 415, "unsupported file type"),
        ("exams.xlsx", b"PK\x03\x04", 415, "unsupported file type"),
        ("exams.json", b"{broken", 400, "not valid json"),
        ("exams.json", b'{"a": 1}', 400, "expected a json list"),
        ("exams.csv", b"NAME,CODE\nCT head,1\n", 400, "no exam_name column"),
        ("exams.json", b"", 400, "empty"),
        ("exams.json", b'[{"EXAM_NAME": ""}]', 400, "no readable exams"),
    ],
)
def test_batch_upload_rejects_files_of_the_wrong_format(client, filename, content, status, text):
    r = client.post("/batch", files={"file": (filename, content, "application/octet-stream")})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert text in err.lower()
    assert "/tmp" not in err and "nhs_lookup_upload" not in err  # no server paths leak


def test_batch_limits_and_request_shapes(make_client):
    client = make_client(max_upload_mb=0.001, max_batch_items=3)  # ~1 KB uploads, 3 exams
    big = json.dumps([{"EXAM_NAME": f"CT head {i}"} for i in range(100)]).encode()
    r = client.post("/batch", files={"file": ("big.json", big, "application/json")})
    assert r.status_code == 413 and "too large" in r.json()["error"]
    r = client.post("/batch", json={"exams": [{"exam_name": f"CT head {i}"} for i in range(4)]})
    assert r.status_code == 413 and "too many exams" in r.json()["error"]
    assert client.post("/batch", json={"exams": []}).status_code == 422
    r = client.post("/batch", json={"exams": [{"exam_name": "ok"}, {"exam_name": ""}]})
    assert r.status_code == 422 and any(d["field"] == "exams.1.exam_name" for d in r.json()["detail"])
    assert (
        client.post("/batch", content=b"EXAM_NAME\nx", headers={"content-type": "text/csv"}).status_code
        == 415
    )
    bare = client.post("/batch", json=[{"EXAM_NAME": "CT Head", "DATA_SOURCE": "H1"}])  # a RIS export as is
    assert bare.status_code == 202 and bare.json()["total"] == 1
    assert client.post("/batch", files={"other": ("a.json", b"[]", "application/json")}).status_code == 422


# --------------------------------------------------------------------- auth
def test_api_key_protects_write_endpoints_only(make_client):
    client = make_client(api_key="s3cret")
    assert client.get("/health").json()["api_key_required"] is True
    exams = {"exams": [{"exam_name": "CT Head", "data_source": "H1"}]}
    assert client.post("/batch", json=exams).status_code == 401
    assert client.post("/batch", json=exams, headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/batch", json=exams, headers={"X-API-Key": "s3cret"})
    assert r.status_code == 202
    wait_job(client, r.json()["id"])
    mid = all_mappings(client)[0]["id"]
    decision = {"action": "flag", "reviewer": "ann"}
    assert client.post(f"/mappings/{mid}/decision", json=decision).status_code == 401
    assert (
        client.post("/mappings/bulk-approve", json={"threshold": 0.5, "reviewer": "ann"}).status_code == 401
    )
    assert (
        client.post(f"/mappings/{mid}/decision", json=decision, headers={"X-API-Key": "s3cret"}).status_code
        == 200
    )
    # reads stay open
    for path in ["/mappings", f"/mappings/{mid}", "/summary", "/export", "/consolidated", "/", "/ui/queue"]:
        assert client.get(path).status_code == 200, path
    assert client.post("/lookup", json={"exam_name": "CT Head"}).status_code == 200


# ------------------------------------------------------------------- review
def test_queue_is_sorted_by_priority_and_filters_work(loaded):
    client, job = loaded
    queue = client.get("/mappings", params={"limit": 500}).json()["items"]
    assert queue, "the sample should leave something to review"
    order = {"flagged": 0, "rejected": 1, "unreviewed": 2, "deferred": 3}
    keys = [(order[m["status"]], m["confidence"] if m["confidence"] is not None else -1) for m in queue]
    assert keys == sorted(keys)
    assert all(m["status"] != "flagged" or m["flags"] for m in queue)
    everything = all_mappings(client)
    assert len(everything) == job["total"]  # one mapping per (source, code, name)
    source = everything[0]["data_source"]
    by_source = all_mappings(client, data_source=source)
    assert by_source and all(m["data_source"] == source for m in by_source)
    assert len(by_source) < len(everything)
    for band, (low, high) in {"high": (0.9, 1.01), "low": (0.0, 0.5)}.items():
        for m in all_mappings(client, band=band):
            assert low <= m["confidence"] < high
    ct = all_mappings(client, modality="CT")
    assert ct and all(m["modality_code"] == "CT" for m in ct)
    flagged = all_mappings(client, flag="engine_no_match")
    assert {m["exam_name"] for m in flagged} >= {"Patient Did Not Attend", "CT Exam Cancelled"}
    assert client.get("/mappings", params={"status": "bogus"}).status_code == 422


def test_auto_flags_follow_configured_rules(make_client, sample_engine):
    client = make_client(review=ReviewRules(low_confidence_below=1.01, flag_singletons=False))
    job = wait_job(
        client,
        client.post(
            "/batch",
            json={
                "exams": [
                    {"exam_name": "US Breast Core Bx Right", "modality_code": "Mamm"},
                    {"exam_name": "MRI Knee Lt", "modality_code": "MR"},
                ]
            },
        ).json()["id"],
    )
    assert job["status"] == "done"
    ms = {m["exam_name"]: m for m in all_mappings(client)}
    assert all("low_confidence" in m["flags"] and m["status"] == "flagged" for m in ms.values())
    assert all("singleton" not in m["flags"] for m in ms.values())
    # Mamm code but an ultrasound-guided procedure: the RIS code disagrees with the proposed row
    target = sample_engine.catalogue.by_name(ms["US Breast Core Bx Right"]["target_name"])
    assert target.components.modality == "US"
    assert "modality_mismatch" in ms["US Breast Core Bx Right"]["flags"]
    assert "modality_mismatch" not in ms["MRI Knee Lt"]["flags"]


def test_singleton_flag_tracks_how_many_names_share_a_row(client):
    exams = [{"exam_name": "MRI Knee Lt", "data_source": "H1"}]
    wait_job(client, client.post("/batch", json={"exams": exams}).json()["id"])
    first = all_mappings(client)[0]
    assert "singleton" in first["flags"]
    wait_job(
        client,
        client.post("/batch", json={"exams": [{"exam_name": "MRI Knee Lt", "data_source": "H2"}]}).json()[
            "id"
        ],
    )
    ms = all_mappings(client)
    assert len(ms) == 2 and ms[0]["target_name"] == ms[1]["target_name"]
    assert all("singleton" not in m["flags"] for m in ms)


def test_review_decisions_history_and_remembered_answers(loaded, sample_engine):
    client, _ = loaded
    m = mapping_for(client, "MRI Knee Lt")
    query = {
        "exam_name": "MRI Knee Lt",
        "modality_code": "MR",
        "exam_code": "MRKL",
        "data_source": "Hospital B",
    }
    assert m["target_name"]
    r = client.post(
        f"/mappings/{m['id']}/decision", json={"action": "approve", "reviewer": "Dr Ann", "comment": "ok"}
    )
    assert r.status_code == 200
    d = r.json()
    assert d["status"] == "approved" and d["reviewer"] == "Dr Ann" and d["decided_at"]
    assert [h["action"] for h in d["history"]] == ["approve"]

    # approved answers come back at once, with provenance; case and spaces do not matter
    r = client.post("/lookup", json={**query, "exam_name": "  mri knee LT "}).json()
    assert r["remembered"] is True
    assert r["result"]["clean_name"] == m["target_name"] and r["result"]["confidence"] == 1.0
    assert r["result"]["provenance"]["reviewer"] == "Dr Ann"
    assert r["review"]["status"] == "approved"
    # a different data source is a different mapping: not remembered
    assert client.post("/lookup", json={**query, "data_source": "Other"}).json()["remembered"] is False

    # pick another candidate; the history keeps both decisions (append-only)
    other = next(c["name"] for c in d["proposal"]["all_candidates"] if c["name"] != m["target_name"])
    d2 = client.post(
        f"/mappings/{m['id']}/decision",
        json={"action": "choose", "reviewer": "Bob", "target_name": other, "equivalence": "narrower"},
    ).json()
    assert d2["target_name"] == other and d2["status"] == "approved" and d2["equivalence"] == "narrower"
    assert [(h["action"], h["reviewer"]) for h in d2["history"]] == [("approve", "Dr Ann"), ("choose", "Bob")]
    assert d2["history"][0] == d["history"][0]
    assert d2["target_snomed_id"] == str(sample_engine.catalogue.by_name(other).snomed_id)
    assert client.post("/lookup", json=query).json()["result"]["clean_name"] == other

    bad = client.post(
        f"/mappings/{m['id']}/decision",
        json={"action": "choose", "reviewer": "Bob", "target_name": "No such row"},
    )
    assert bad.status_code == 422 and "not a catalogue name" in bad.json()["error"]
    assert (
        client.post(f"/mappings/{m['id']}/decision", json={"action": "choose", "reviewer": "Bob"}).status_code
        == 422
    )
    assert (
        client.post(
            f"/mappings/{m['id']}/decision", json={"action": "explode", "reviewer": "Bob"}
        ).status_code
        == 422
    )
    assert (
        client.post(f"/mappings/{m['id']}/decision", json={"action": "flag", "reviewer": ""}).status_code
        == 422
    )

    # reset hands the mapping back to the engine; the history still has everything
    d3 = client.post(f"/mappings/{m['id']}/decision", json={"action": "reset", "reviewer": "Bob"}).json()
    assert d3["status"] in ("unreviewed", "flagged") and d3["status_by"] == "auto"
    assert len(d3["history"]) == 3
    assert client.post("/lookup", json=query).json()["remembered"] is False


def test_rejected_targets_are_never_proposed_again(loaded):
    client, _ = loaded
    m = mapping_for(client, "CT Abdo/Pelvis C+")
    query = {
        "exam_name": "CT Abdo/Pelvis C+",
        "modality_code": "CT",
        "exam_code": "CTAP+",
        "data_source": "Hospital B",
    }
    first = m["target_name"]
    d = client.post(f"/mappings/{m['id']}/decision", json={"action": "reject", "reviewer": "ann"}).json()
    assert d["status"] == "rejected" and d["rejected_targets"] == [first]
    assert d["target_name"] != first
    res = client.post("/lookup", json=query).json()
    assert res["remembered"] is False
    assert res["result"]["clean_name"] != first
    assert first not in [c["name"] for c in res["result"]["all_candidates"]]
    # the same holds in a new batch job
    job = wait_job(client, client.post("/batch", json={"exams": [query]}).json()["id"])
    item = client.get(f"/jobs/{job['id']}/results").json()["items"][0]
    assert item["result"]["clean_name"] != first
    assert first not in [c["name"] for c in item["result"]["all_candidates"]]
    # rejecting twice excludes both
    second = d["target_name"]
    assert second
    d2 = client.post(f"/mappings/{m['id']}/decision", json={"action": "reject", "reviewer": "ann"}).json()
    assert d2["rejected_targets"] == [first, second]
    assert d2["target_name"] not in (first, second)
    assert [h["previous_target"] for h in d2["history"]] == [first, second]


def test_no_match_flag_defer_and_remembered_in_batch(loaded):
    client, _ = loaded
    dna = mapping_for(client, "Patient Did Not Attend")
    assert dna["target_name"] is None
    assert (
        client.post(
            f"/mappings/{dna['id']}/decision", json={"action": "approve", "reviewer": "a"}
        ).status_code
        == 409
    )
    assert (
        client.post(f"/mappings/{dna['id']}/decision", json={"action": "no_match", "reviewer": "a"}).json()[
            "status"
        ]
        == "no_match"
    )
    knee = mapping_for(client, "Knee Rt")
    assert (
        client.post(
            f"/mappings/{knee['id']}/decision", json={"action": "approve", "reviewer": "a"}
        ).status_code
        == 200
    )
    us = mapping_for(client, "US Abdo")
    assert (
        client.post(
            f"/mappings/{us['id']}/decision",
            json={"action": "flag", "reviewer": "a", "comment": "2nd opinion"},
        ).json()["status"]
        == "flagged"
    )
    thy = mapping_for(client, "Ultrasound Thyroid")
    assert (
        client.post(f"/mappings/{thy['id']}/decision", json={"action": "defer", "reviewer": "a"}).json()[
            "status"
        ]
        == "deferred"
    )

    exams = [
        {
            "exam_name": "Patient Did Not Attend",
            "modality_code": "XR",
            "exam_code": "DNA1",
            "data_source": "Hospital D",
        },
        {"exam_name": "Knee Rt", "modality_code": "XR", "exam_code": "KNR", "data_source": "Hospital A"},
        {"exam_name": "US Abdo", "modality_code": "US", "exam_code": "USAB", "data_source": "Hospital C"},
    ]
    job = wait_job(client, client.post("/batch", json={"exams": exams}).json()["id"])
    items = client.get(f"/jobs/{job['id']}/results").json()["items"]
    assert [i["remembered"] for i in items] == [True, True, False]
    assert (
        items[0]["result"]["no_match_reason"] == "reviewed_no_match"
        and items[0]["result"]["matched"] is False
    )
    assert items[1]["result"]["clean_name"] == knee["target_name"]
    assert items[1]["result"]["provenance"]["reviewer"] == "a"
    # a human flag is not overwritten by the new proposal
    assert mapping_for(client, "US Abdo")["status"] == "flagged"


def test_bulk_approve_respects_threshold_source_and_human_decisions(loaded):
    client, _ = loaded
    before = {m["id"]: m for m in all_mappings(client)}
    human = next(m for m in before.values() if m["target_name"] and (m["confidence"] or 0) >= 0.5)
    client.post(f"/mappings/{human['id']}/decision", json={"action": "defer", "reviewer": "carol"})
    src = "Hospital B"
    r = client.post("/mappings/bulk-approve", json={"threshold": 0.5, "reviewer": "bulk", "data_source": src})
    assert r.status_code == 200
    after = {m["id"]: m for m in all_mappings(client)}
    newly = [i for i in after if after[i]["status"] == "approved" and before[i]["status"] != "approved"]
    assert len(newly) == r.json()["approved"] > 0
    for i in newly:
        assert (
            after[i]["data_source"] == src
            and after[i]["confidence"] >= 0.5
            and after[i]["reviewer"] == "bulk"
        )
        assert set(before[i]["flags"]) <= {"singleton"}  # other flags need include_flagged
        assert after[i]["target_name"] == before[i]["target_name"]
    assert after[human["id"]]["status"] == "deferred"  # never overrides a human decision
    r2 = client.post(
        "/mappings/bulk-approve", json={"threshold": 0.0, "reviewer": "bulk", "include_flagged": True}
    )
    final = {m["id"]: m for m in all_mappings(client)}
    assert final[human["id"]]["status"] == "deferred"
    assert all(
        m["status"] == "approved"
        for m in final.values()
        if m["target_name"] and m["status_by"] == "human" and m["reviewer"] == "bulk"
    )
    assert r2.json()["approved"] == sum(1 for m in final.values() if m["reviewer"] == "bulk") - len(newly)
    assert client.post("/mappings/bulk-approve", json={"threshold": 1.5, "reviewer": "x"}).status_code == 422


def test_catalogue_search(client, sample_engine):
    r = client.get("/catalogue/search", params={"q": "knee mri", "limit": 5})
    assert r.status_code == 200
    names = [e["name"] for e in r.json()]
    assert names == [e.name for e in sample_engine.search_catalogue("knee mri", 5)]
    assert names and all(sample_engine.catalogue.by_name(n) is not None for n in names)
    assert client.get("/catalogue/search", params={"q": "x" * 201}).status_code == 422


# ----------------------------------------------------------- views/exports
def test_summary_and_consolidated_view(loaded):
    client, job = loaded
    ms = all_mappings(client)
    summary = {s["data_source"]: s for s in client.get("/summary").json()}
    for source, s in summary.items():
        mine = [m for m in ms if m["data_source"] == source]
        assert s["total"] == len(mine)
        assert s["approved"] == sum(m["status"] == "approved" for m in mine)
        assert s["needs_review"] == sum(
            m["status"] in ("unreviewed", "flagged", "rejected", "deferred") for m in mine
        )
    assert sum(s["total"] for s in summary.values()) == job["total"]

    # the same local name from two hospitals mapped to different rows is reported as inconsistent
    a = {"exam_name": "CT Head", "data_source": "North"}
    b = {"exam_name": "ct head", "data_source": "South"}
    wait_job(client, client.post("/batch", json={"exams": [a, b]}).json()["id"])
    south = next(m for m in all_mappings(client, data_source="South"))
    other = client.get("/catalogue/search", params={"q": "CT head with contrast"}).json()[0]["name"]
    if other == south["target_name"]:
        other = client.get("/catalogue/search", params={"q": "MRI head"}).json()[0]["name"]
    client.post(
        f"/mappings/{south['id']}/decision", json={"action": "choose", "reviewer": "x", "target_name": other}
    )
    view = client.get("/consolidated").json()
    rows = {r["target_name"]: r for r in view["rows"]}
    for m in all_mappings(client):
        if m["target_name"] and m["status"] != "no_match":
            assert m["id"] in [n["mapping_id"] for n in rows[m["target_name"]]["names"]]
    assert [r["count"] for r in view["rows"]] == sorted((r["count"] for r in view["rows"]), reverse=True)
    inconsistent = {i["exam_name"].lower(): i for i in view["inconsistent"]}
    assert "ct head" in inconsistent and len(inconsistent["ct head"]["targets"]) == 2


def test_exports_csv_json_and_fhir_conceptmap(loaded):
    client, _ = loaded
    ms = all_mappings(client)
    approve = [m for m in ms if m["target_name"]][:4]
    for m in approve:
        client.post(f"/mappings/{m['id']}/decision", json={"action": "approve", "reviewer": "ann"})
    dna = mapping_for(client, "Patient Did Not Attend")
    client.post(f"/mappings/{dna['id']}/decision", json={"action": "no_match", "reviewer": "ann"})

    r = client.get("/export", params={"format": "csv", "scope": "approved"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(r["exam_name"] for r in rows) == sorted(
        [m["exam_name"] for m in approve] + ["Patient Did Not Attend"]
    )
    by_name = {r["exam_name"]: r for r in rows}
    for m in approve:
        assert by_name[m["exam_name"]]["proposed_name"] == m["target_name"]
        assert (
            by_name[m["exam_name"]]["reviewer"] == "ann" and by_name[m["exam_name"]]["status"] == "approved"
        )
    assert (
        by_name["Patient Did Not Attend"]["status"] == "no_match"
        and by_name["Patient Did Not Attend"]["proposed_name"] == ""
    )

    all_rows = list(csv.DictReader(io.StringIO(client.get("/export", params={"scope": "all"}).text)))
    assert len(all_rows) == len(ms)

    data = client.get("/export", params={"format": "json", "scope": "all"}).json()
    assert len(data["mappings"]) == len(ms) and data["scope"] == "all" and "engine" in data
    assert sum(s["approved"] for s in data["summary"]) == len(approve)

    one_source = client.get(
        "/export", params={"format": "json", "scope": "all", "data_source": "Hospital A"}
    ).json()
    assert {m["data_source"] for m in one_source["mappings"]} == {"Hospital A"}

    cm = client.get("/export", params={"format": "fhir", "scope": "approved"}).json()
    assert cm["resourceType"] == "ConceptMap" and cm["status"] == "active"
    elements = [(g, e) for g in cm["group"] for e in g["element"]]
    assert len(elements) == len(approve) + 1
    for g, e in elements:
        assert g["source"].startswith("urn:nhs-lookup:ris:")
        assert g["target"] == "http://snomed.info/sct"
        (t,) = e["target"]
        if e["display"] == "Patient Did Not Attend":
            assert t["equivalence"] == "unmatched" and "code" not in t
        else:
            m = next(m for m in approve if m["exam_name"] == e["display"])
            assert e["code"] == (m["exam_code"] or m["exam_name"])
            assert t["code"] == m["target_snomed_id"] and t["equivalence"] == "equivalent" and t["display"]
    draft = client.get("/export", params={"format": "fhir", "scope": "all"}).json()
    assert draft["status"] == "draft"
    assert sum(len(g["element"]) for g in draft["group"]) == len(ms)

    fhir = pytest.importorskip("fhir.resources.R4B.conceptmap", reason="fhir.resources not installed")
    for resource in (cm, draft):
        parsed = fhir.ConceptMap.model_validate(resource)
        assert parsed.group[0].target == "http://snomed.info/sct"


def test_web_pages_render_and_use_no_external_assets(loaded):
    client, _ = loaded
    mid = all_mappings(client)[0]["id"]
    pages = {
        "/": "Upload a RIS export",
        "/ui/queue": "Review queue",
        f"/ui/review/{mid}": "Keyboard shortcuts",
        "/ui/consolidated": "Consolidated view",
    }
    for path, text in pages.items():
        r = client.get(path)
        assert r.status_code == 200 and text in r.text, path
        # every script, stylesheet and link is served by this process (works offline, no CDN)
        refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
        assert refs and all(ref.startswith(("/", "?", "#")) for ref in refs), refs
    for asset in ["/static/app.js", "/static/app.css"]:
        r = client.get(asset)
        assert r.status_code == 200 and "https://" not in r.text and "http://" not in r.text
    assert "approve" in client.get(f"/ui/review/{mid}").text.lower()
    assert client.get("/ui/review/99999").status_code == 404


def test_api_docs_are_served_locally(client):
    pytest.importorskip(
        "swagger_ui_bundle", reason="swagger-ui-bundle-v2 not installed (docs then use a CDN)"
    )
    html = client.get("/docs").text
    refs = re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)
    assert "/docs-assets/swagger-ui-bundle.js" in refs and all(r.startswith("/") for r in refs), refs
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
