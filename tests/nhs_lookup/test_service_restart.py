"""Persistence across restarts: jobs, results and decisions survive; unfinished jobs are resumed
(only the missing items) or reported as interrupted. Includes a REAL `nhs-lookup serve` process that
is killed mid-job and started again on the same database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

import nhs_lookup
from nhs_lookup.cases import load_cases
from nhs_lookup.records import ExamQuery
from nhs_lookup.service import ServiceSettings, create_app

SAMPLE_CASES = Path(nhs_lookup.__file__).parent / "data" / "sample_cases.json"
BASE_URL = "http://127.0.0.1:8000"


def wait_job(get, job_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def sample_exams(copies: int = 1) -> list[dict]:
    cases, _ = load_cases(SAMPLE_CASES)
    return [
        {
            "exam_name": c.query.exam_name,
            "modality_code": c.query.modality_code,
            "exam_code": f"{c.query.exam_code}-{k}" if copies > 1 else c.query.exam_code,
            "data_source": c.query.data_source,
        }
        for k in range(copies)
        for c in cases
    ]


class _StopAfter:
    """Real engine that asks the job runner to stop during its N-th batch call (a deterministic 'crash')."""

    def __init__(self, engine, calls_before_stop: int) -> None:
        self._engine, self.limit = engine, calls_before_stop
        self.config, self.catalogue = engine.config, engine.catalogue
        self.calls = 0
        self.looked_up = 0
        self.runner = None

    def lookup(self, query, **kw):
        self.looked_up += 1
        return self._engine.lookup(query, **kw)

    def lookup_many(self, queries):
        queries = list(queries)
        self.calls += 1
        self.looked_up += len(queries)
        if self.calls == self.limit and self.runner is not None:
            self.runner.request_stop()
        return self._engine.lookup_many(queries)

    def search_catalogue(self, text, limit=20):
        return self._engine.search_catalogue(text, limit)


def test_unfinished_job_is_resumed_processing_only_missing_items(sample_engine, tmp_path):
    db = f"sqlite:///{tmp_path / 'resume.db'}"
    exams = sample_exams(copies=2)
    first = _StopAfter(sample_engine, calls_before_stop=2)
    app = create_app(ServiceSettings(db_url=db, job_chunk_size=5), engine=first)
    with TestClient(app, base_url=BASE_URL) as client:
        first.runner = app.state.ctx.runner
        job_id = client.post("/batch", json={"exams": exams}).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/jobs/{job_id}").json()["processed"] < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the runner has stopped: nothing more may be committed
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "running" and job["processed"] == 10  # two chunks of 5 committed
        done_before = client.get(f"/jobs/{job_id}/results", params={"limit": 10}).json()["items"]

    second = _StopAfter(sample_engine, calls_before_stop=10**9)
    with TestClient(
        create_app(ServiceSettings(db_url=db, job_chunk_size=5), engine=second), base_url=BASE_URL
    ) as client:
        job = wait_job(client.get, job_id)
        assert job["status"] == "done" and job["processed"] == job["total"] == len(exams)
        assert job["resumed_count"] == 1
        assert second.looked_up == len(exams) - 10  # only the missing items
        items = client.get(f"/jobs/{job_id}/results", params={"limit": 1000}).json()["items"]
        assert [i["row"] for i in items] == list(range(1, len(exams) + 1))
        assert all(i["done"] and i["error"] is None for i in items)
        assert items[:10] == done_before  # earlier results untouched
        expected = sample_engine.lookup_many(
            [ExamQuery(e["exam_name"], e["modality_code"], e["exam_code"], e["data_source"]) for e in exams]
        )
        assert [i["result"]["clean_name"] for i in items] == [
            r.best.entry.name if r.best else None for r in expected
        ]


def test_unfinished_job_reported_interrupted_when_resume_is_off(sample_engine, tmp_path):
    db = f"sqlite:///{tmp_path / 'interrupt.db'}"
    engine = _StopAfter(sample_engine, calls_before_stop=1)
    app = create_app(ServiceSettings(db_url=db, job_chunk_size=4), engine=engine)
    with TestClient(app, base_url=BASE_URL) as client:
        engine.runner = app.state.ctx.runner
        job_id = client.post("/batch", json={"exams": sample_exams()}).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/jobs/{job_id}").json()["processed"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    with TestClient(
        create_app(ServiceSettings(db_url=db, resume_jobs=False), engine=sample_engine), base_url=BASE_URL
    ) as client:
        job = client.get(f"/jobs/{job_id}").json()
        assert (
            job["status"] == "interrupted" and job["processed"] == 4 and job["total"] == len(sample_exams())
        )
        assert "interrupted" in job["message"] and job["finished_at"]
        csv_text = client.get(f"/jobs/{job_id}/results", params={"format": "csv"}).text
        assert csv_text.count("not processed yet") == job["total"] - 4
        time.sleep(0.3)
        assert client.get(f"/jobs/{job_id}").json()["status"] == "interrupted"  # not silently restarted


# ------------------------------------------------------------ real process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`nhs-lookup serve` in a subprocess on 127.0.0.1."""

    def __init__(self, tmp: Path, db: str, *extra: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "NHS_LOOKUP_CACHE": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
        src = str(Path(nhs_lookup.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self.log = (tmp / f"server_{self.port}.log").open("w")
        cmd = [sys.executable, "-m", "nhs_lookup.cli", "serve", "--port", str(self.port), "--db", db, *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.http = httpx.Client(base_url=self.base, timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {Path(self.log.name).read_text()}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not start")

    def get(self, path: str, **kw):
        return self.http.get(path, **kw)

    def post(self, path: str, **kw):
        return self.http.post(path, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.http.close()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.log.close()


def test_real_server_killed_mid_job_keeps_results_and_decisions(tmp_path):
    db = f"sqlite:///{tmp_path / 'real.db'}"
    server = Server(tmp_path, db, "--job-chunk-size", "3", "--log-level", "warning")
    try:
        small = server.post("/batch", json={"exams": sample_exams(), "name": "small"}).json()
        wait_job(server.get, small["id"])
        mappings = server.get("/mappings", params={"status": "all", "limit": 500}).json()["items"]
        knee = next(m for m in mappings if m["exam_name"] == "MRI Knee Lt")
        head = next(m for m in mappings if m["exam_name"] == "CT Brain non-contrast")
        server.post(
            f"/mappings/{knee['id']}/decision",
            json={"action": "approve", "reviewer": "Dr Kim", "comment": "checked"},
        )
        server.post(f"/mappings/{head['id']}/decision", json={"action": "reject", "reviewer": "Dr Kim"})

        big_exams = sample_exams(copies=20)
        big = server.post("/batch", json={"exams": big_exams, "name": "big"}).json()
        seen = 0
        deadline = time.monotonic() + 60
        while seen == 0 and time.monotonic() < deadline:
            seen = server.get(f"/jobs/{big['id']}").json()["processed"]
            time.sleep(0.01)
        server.proc.kill()  # no clean shutdown at all
        server.proc.wait(timeout=30)
        server.log.close()
    except BaseException:
        server.proc.kill()
        raise
    assert 0 < seen < len(big_exams), f"job not caught mid-way ({seen}/{len(big_exams)})"

    again = Server(tmp_path, db, "--job-chunk-size", "50", "--log-level", "info")
    try:
        job = wait_job(again.get, big["id"])
        assert job["status"] == "done" and job["resumed_count"] == 1
        assert job["processed"] == job["total"] == len(big_exams) and job["failed"] == 0
        items = []
        for offset in range(0, len(big_exams), 1000):
            items += again.get(f"/jobs/{big['id']}/results", params={"offset": offset, "limit": 1000}).json()[
                "items"
            ]
        assert [i["row"] for i in items] == list(range(1, len(big_exams) + 1))
        assert all(i["done"] and i["result"] for i in items)
        assert again.get(f"/jobs/{small['id']}").json()["status"] == "done"

        detail = again.get(f"/mappings/{knee['id']}").json()
        assert detail["status"] == "approved" and detail["reviewer"] == "Dr Kim"
        assert [(h["action"], h["comment"]) for h in detail["history"]] == [("approve", "checked")]
        q = {
            "exam_name": "MRI Knee Lt",
            "modality_code": "MR",
            "exam_code": "MRKL",
            "data_source": "Hospital B",
        }
        res = again.post("/lookup", json=q).json()
        assert res["remembered"] and res["result"]["provenance"]["reviewer"] == "Dr Kim"
        rejected = again.get(f"/mappings/{head['id']}").json()
        assert rejected["status"] == "rejected" and rejected["rejected_targets"] == [head["target_name"]]
        q2 = {
            "exam_name": "CT Brain non-contrast",
            "modality_code": "CT",
            "exam_code": "CTH",
            "data_source": "Hospital B",
        }
        res2 = again.post("/lookup", json=q2).json()["result"]
        assert head["target_name"] not in [c["name"] for c in res2["all_candidates"]]
        export = json.loads(again.get("/export", params={"format": "json"}).text)
        assert [m["exam_name"] for m in export["mappings"]] == ["MRI Knee Lt"]
    finally:
        code = again.stop(signal.SIGTERM)
    # graceful shutdown on SIGTERM (uvicorn re-raises the signal after shutting down cleanly)
    assert code in (0, -signal.SIGTERM)
    log = Path(again.log.name).read_text()
    assert "unfinished jobs from a previous run: 1 resumed" in log
    assert "Application shutdown complete" in log and "Traceback" not in log
