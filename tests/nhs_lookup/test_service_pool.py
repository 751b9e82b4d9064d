"""Lookups in worker processes (`serve --lookup-workers N`): the same answers as in-process, batch jobs
work through the pool, and a killed worker costs speed, never an answer."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fastapi.testclient import TestClient

from nhs_lookup.records import ExamQuery
from nhs_lookup.service import ServiceSettings, create_app
from nhs_lookup.service.pool import fork_available

pytestmark = pytest.mark.skipif(not fork_available(), reason="the lookup pool needs the 'fork' start method")
BASE_URL = "http://127.0.0.1:8000"
NAMES = ["CT Abdo/Pelvis C+", "MRI Knee Lt", "US Abdo", "XR Chest", "Did not attend"]


def _wait(client, job_id):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_pooled_lookups_match_the_engine_and_survive_a_dead_worker(sample_engine, tmp_path):
    settings = ServiceSettings(db_url=f"sqlite:///{tmp_path / 'p.db'}", lookup_workers=2)
    app = create_app(settings, engine=sample_engine)
    with TestClient(app, base_url=BASE_URL) as client:
        pool = app.state.ctx.engine.engine  # the pool, under the micro-batching layer
        assert pool.pooled and len(pool._pool._processes) == 2
        for name in NAMES:
            got = client.post("/lookup", json={"exam_name": name}).json()["result"]
            want = sample_engine.lookup(ExamQuery(name))
            assert got["clean_name"] == (want.best.entry.name if want.best else None)
            assert got["confidence"] == pytest.approx(want.confidence, abs=1e-4)
        job = _wait(
            client, client.post("/batch", json={"exams": [{"exam_name": n} for n in NAMES]}).json()["id"]
        )
        assert job["status"] == "done" and job["processed"] == len(NAMES) and job["failed"] == 0

        os.kill(next(iter(pool._pool._processes)), signal.SIGKILL)  # a worker dies (OOM killer, kill -9)
        answers = [client.post("/lookup", json={"exam_name": n}) for n in NAMES]
        assert [r.status_code for r in answers] == [200] * len(NAMES)
        assert not pool.pooled  # retired: lookups now run in the server process
        assert (
            answers[0].json()["result"]["clean_name"]
            == sample_engine.lookup(ExamQuery(NAMES[0])).best.entry.name
        )
