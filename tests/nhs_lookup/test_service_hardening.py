"""Hardening of `nhs-lookup serve` (issue 9 items 5-8, 13): formula-safe CSV downloads, uploads in any
encoding Excel writes, binary and deeply nested uploads, 64-bit bounds, cross-site requests, DNS
rebinding and security headers. A bad-input probe set must give 0 x 500; part of it runs against a
real uvicorn process, where a 500 used to reset the keep-alive connection."""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import nhs_lookup
from nhs_lookup.service import ServiceSettings, create_app
from radqc_common.security import host_policy

BASE_URL = "http://127.0.0.1:8000"
HUGE = "9" * 30
FORMULAS = ['=HYPERLINK("http://evil","x")', "+cmd", "-2+3 CT", "@SUM(1)", "=cmd|' /C calc'!A0"]
DEEP = b"[" * 100_000 + b"]" * 100_000


def wait_job(get, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def client(sample_engine, tmp_path):
    app = create_app(ServiceSettings(db_url=f"sqlite:///{tmp_path / 's.db'}"), engine=sample_engine)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as c:
        yield c


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


# ----------------------------------------------------------------------------- CSV injection
def test_job_csv_and_export_csv_neutralise_formulas(client):
    exams = [{"exam_name": f, "exam_code": f, "data_source": "=src"} for f in FORMULAS]
    job = wait_job(client.get, client.post("/batch", json={"exams": exams}).json()["id"])
    assert job["status"] == "done"
    job_rows = list(csv.DictReader(io.StringIO(client.get(job["links"]["csv"]).text)))
    assert [r["exam_name"] for r in job_rows] == ["'" + f for f in FORMULAS]
    export = client.get("/export", params={"format": "csv", "scope": "all"})
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["exam_name"] for r in rows) == sorted("'" + f for f in FORMULAS)
    for row in job_rows + rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    # JSON keeps the names exactly as submitted
    names = {m["exam_name"] for m in client.get("/mappings", params={"status": "all"}).json()["items"]}
    assert names == set(FORMULAS)


# --------------------------------------------------------------------------------- uploads
@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("ris.csv", "EXAM_NAME,MODALITY_CODE\nÉchographie abdo,US\n".encode("cp1252")),
        ("ris.csv", "EXAM_NAME,MODALITY_CODE\nÉchographie abdo,US\n".encode("utf-16")),
        ("ris.csv", b"\xef\xbb\xbf" + "EXAM_NAME;MODALITY_CODE\nÉchographie abdo;US\n".encode()),
        ("ris.tsv", "EXAM_NAME\tMODALITY_CODE\nÉchographie abdo\tUS\n".encode()),
        ("ris.json", '[{"EXAM_NAME": "Échographie abdo", "MODALITY_CODE": "US"}]'.encode("utf-16")),
    ],
)
def test_uploads_in_excel_encodings_and_delimiters(client, filename, data):
    r = client.post("/batch", files={"file": (filename, data, "application/octet-stream")})
    assert r.status_code == 202, r.text
    job = wait_job(client.get, r.json()["id"])
    items = client.get(f"/jobs/{job['id']}/results").json()["items"]
    assert [(i["exam_name"], i["modality_code"]) for i in items] == [("Échographie abdo", "US")]


@pytest.mark.parametrize(
    ("filename", "data", "text"),
    [
        ("ris.csv", _zip(), "zip archive"),
        ("ris.json", _zip(), "zip archive"),
        ("ris.csv", bytes(range(256)) * 8, "binary content"),
        ("ris.json", DEEP, "nested too deeply"),
        ("ris.csv", b"EXAM_NAME\n" + b"x" * 200_000 + b"\n", "field larger"),
    ],
)
def test_bad_uploads_are_400_with_one_line(client, filename, data, text):
    r = client.post("/batch", files={"file": (filename, data, "application/octet-stream")})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert text in error and "\n" not in error and "/tmp" not in error


# ------------------------------------------------------------------------------ probe set
PROBES = [
    ("POST", "/lookup", {"content": DEEP, "headers": {"content-type": "application/json"}}),
    ("POST", "/lookup", {"content": b'{"exam_name":' + b"[" * 5000 + b"]" * 5000 + b"}",
                         "headers": {"content-type": "application/json"}}),
    ("POST", "/batch", {"content": DEEP, "headers": {"content-type": "application/json"}}),
    ("POST", "/batch", {"content": b'{"exams":' + DEEP + b"}", "headers": {"content-type": "application/json"}}),
    ("GET", f"/jobs/x/results?offset={HUGE}", {}),
    ("GET", f"/mappings?offset={HUGE}", {}),
    ("GET", f"/mappings/{HUGE}", {}),
    ("GET", f"/mappings/-{HUGE}", {}),
    ("GET", f"/ui/review/{HUGE}", {}),
    ("GET", f"/ui/queue?offset={HUGE}", {}),
    ("GET", f"/jobs?limit={HUGE}", {}),
    ("GET", f"/catalogue/search?q=ct&limit={HUGE}", {}),
    ("POST", f"/mappings/{HUGE}/decision", {"json": {"action": "flag", "reviewer": "x"}}),
    ("POST", "/mappings/bulk-approve", {"content": b'{"threshold": 1e999, "reviewer": "x"}',
                                         "headers": {"content-type": "application/json"}}),
    ("POST", "/mappings/bulk-approve", {"content": b'{"threshold": NaN, "reviewer": "x"}',
                                         "headers": {"content-type": "application/json"}}),
    ("POST", "/lookup", {"json": {"exam_name": "\u200b"}}),
    ("POST", "/lookup", {"json": {"exam_name": "\u200b\u200d\ufeff"}}),
    ("POST", "/lookup", {"content": b'{"exam_name": 123456789012345678901234567890}',
                         "headers": {"content-type": "application/json"}}),
    ("POST", "/lookup", {"content": b'{"exam_name": "\\ud800"}', "headers": {"content-type": "application/json"}}),
    ("POST", "/lookup", {"content": b"\xff\xfe{}", "headers": {"content-type": "application/json"}}),
    ("GET", "/catalogue/search?q=%E2%80%8B", {}),
    ("GET", "/jobs/" + "a" * 5000, {}),
    ("POST", "/batch", {"content": b"junk", "headers": {"content-type": "multipart/form-data"}}),
    ("POST", "/batch", {"content": b"--xx\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xx"}}),
    ("POST", "/batch", {"files": {"file": ("a.csv", b"\x00\x01\x02" * 100, "text/csv")}}),
    ("POST", "/batch", {"files": {"file": ("a.csv", b"PK\x03\x04" + b"\x00" * 100, "text/csv")}}),
    ("POST", "/batch", {"files": {"file": ("a.json", b'{"exams": {"a": 1}}', "application/json")}}),
    ("POST", "/batch", {"files": {"file": ("a.json", b'[[1, 2], "x", null, {"EXAM_NAME": {}}]', "application/json")}}),
    ("POST", "/batch", {"json": {"exams": [{"exam_name": ["CT"]}]}}),
    ("POST", "/batch", {"json": {"exams": "CT head"}}),
    ("POST", "/lookup", {"json": {"exam_name": "CT head"}, "headers": {"origin": "http://evil.example"}}),
    ("POST", "/batch", {"files": {"file": ("a.csv", b"EXAM_NAME\nCT Head\n", "text/csv")},
                        "headers": {"origin": "http://evil.example"}}),
    ("GET", "/health", {"headers": {"host": "evil.example"}}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs"), PROBES, ids=[f"{i}" for i in range(len(PROBES))])
def test_bad_input_probe_set_gives_no_500(client, method, path, kwargs):
    r = client.request(method, path, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert "\n" not in error and "Traceback" not in r.text and len(error) < 600


# ------------------------------------------------------------------------- cross-site, hosts
def test_cross_origin_writes_are_refused_same_origin_and_scripts_pass(client):
    body = {"exam_name": "CT Head"}
    assert client.post("/lookup", json=body).status_code == 200  # a script: no Origin, no Referer
    assert client.post("/lookup", json=body, headers={"origin": BASE_URL}).status_code == 200
    assert client.post("/lookup", json=body, headers={"referer": BASE_URL + "/ui/queue"}).status_code == 200
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:9999"},  # another port is another origin
        {"referer": "http://evil.example/page"},
    ):
        r = client.post("/lookup", json=body, headers=headers)
        assert r.status_code == 403 and "cross-origin" in r.json()["error"], headers
    upload = {"file": ("ris.csv", b"EXAM_NAME\nCT Head\n", "text/csv")}
    r = client.post("/batch", files=upload, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/jobs").json() == []  # nothing was started
    assert client.get("/health", headers={"origin": "http://evil.example"}).status_code == 200  # reads pass


def test_host_header_is_checked_against_the_bound_address(client):
    assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/health", headers={"host": "[::1]:8000"}).status_code == 200
    r = client.get("/health", headers={"host": "rebind.evil.example:8000"})
    assert r.status_code == 400 and "--allowed-host" in r.json()["error"]
    policy = host_policy("10.1.2.3", ["mapper.hospital.nhs.uk"])
    assert policy is not None and policy.allows("10.1.2.3") and policy.allows("mapper.hospital.nhs.uk")
    assert not policy.allows("10.9.9.9") and not policy.allows("evil.example")
    wildcard = host_policy("0.0.0.0")
    assert wildcard is not None and wildcard.allows("192.168.1.20") and not wildcard.allows("evil.example")
    assert host_policy("127.0.0.1", ["*"]) is None


def test_security_headers_on_pages_api_errors_and_downloads(client):
    for path in (
        "/",
        "/ui/queue",
        "/health",
        "/no/such/page",
        "/static/app.js",
        "/export?format=csv",
        "/docs",
    ):
        r = client.get(path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
    page_csp = client.get("/").headers["content-security-policy"]
    assert "unsafe-inline" not in page_csp and "http" not in page_csp
    for name in ("index.html", "queue.html", "review.html", "consolidated.html", "base.html"):
        html = (Path(nhs_lookup.__file__).parent / "service" / "templates" / name).read_text()
        assert " style=" not in html and " onchange=" not in html and " onclick=" not in html, name


# ----------------------------------------------------------------------------- real server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_refuses_cross_site_upload_and_rebinding_and_survives_bad_ints(tmp_path):
    port = _free_port()
    env = {**os.environ, "NHS_LOOKUP_CACHE": str(tmp_path / "cache")}
    env.pop("NHS_LOOKUP_API_KEY", None)
    src = str(Path(nhs_lookup.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    log = (tmp_path / "server.log").open("w")
    cmd = [sys.executable, "-m", "nhs_lookup.cli", "serve", "--port", str(port),
           "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            upload = {"file": ("ris.csv", b"EXAM_NAME\nCT Head\n", "text/csv")}
            r = http.post("/batch", files=upload, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            r = http.get("/health", headers={"Host": f"rebind.evil.example:{port}"})
            assert r.status_code == 400
            # one keep-alive connection: bad ints and deep JSON are 4xx and the connection stays usable
            for path in (f"/mappings/{HUGE}", f"/mappings?offset={HUGE}", f"/jobs/x/results?offset={HUGE}"):
                assert http.get(path).status_code == 422, path
            r = http.post("/lookup", content=DEEP, headers={"content-type": "application/json"})
            assert r.status_code == 400
            assert (
                http.post("/lookup", json={"exam_name": "CT Head"}, headers={"Origin": base}).status_code
                == 200
            )
            assert http.get("/jobs").json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
