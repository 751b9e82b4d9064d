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
        pool = app.state.ctx.engine
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
        # the pool notices the death asynchronously: the surviving worker may answer a few lookups first
        answers = []
        deadline = time.monotonic() + 60
        while pool.pooled and time.monotonic() < deadline:
            answers += [client.post("/lookup", json={"exam_name": n}) for n in NAMES]
        assert [r.status_code for r in answers] == [200] * len(answers)
        assert not pool.pooled  # retired: lookups now run in the server process
        assert (
            answers[0].json()["result"]["clean_name"]
            == sample_engine.lookup(ExamQuery(NAMES[0])).best.entry.name
        )


class _Counting:
    """The real engine, counting calls; fails on one name to show the batch falls back item by item."""

    def __init__(self, engine) -> None:
        self._engine, self.config, self.catalogue = engine, engine.config, engine.catalogue
        self.many_calls = 0

    def lookup(self, query, **kw):
        if query.exam_name == "Boom":
            raise RuntimeError("engine bug")
        return self._engine.lookup(query, **kw)

    def lookup_many(self, queries):
        self.many_calls += 1
        queries = list(queries)
        if any(q.exam_name == "Boom" for q in queries):
            raise RuntimeError("engine bug")
        return self._engine.lookup_many(queries)

    def search_catalogue(self, text, limit=20):
        return self._engine.search_catalogue(text, limit)


def test_concurrent_lookups_are_batched_with_the_same_answers(sample_engine):
    from concurrent.futures import ThreadPoolExecutor

    from nhs_lookup.service.batching import Batcher

    counting = _Counting(sample_engine)
    batcher = Batcher(counting.lookup_many, counting.lookup)
    try:
        queries = [ExamQuery(NAMES[i % len(NAMES)], exam_code=str(i)) for i in range(200)]
        with ThreadPoolExecutor(20) as ex:
            results = list(ex.map(batcher, queries))
        for q, r in zip(queries, results, strict=True):
            want = sample_engine.lookup(q)
            assert (r.best and r.best.entry.name) == (want.best and want.best.entry.name)
            assert r.confidence == pytest.approx(want.confidence, abs=1e-9)
        assert counting.many_calls < len(queries)  # concurrent requests shared engine calls
        futures = [batcher.submit(ExamQuery(n)) for n in ["CT Head", "Boom", "US Abdo"]]
        assert futures[0].result().best is not None and futures[2].result().best is not None
        with pytest.raises(RuntimeError, match="engine bug"):
            futures[1].result()  # a failing batch is answered item by item: only the bad one fails
    finally:
        batcher.close()


def test_lookup_requests_share_database_and_engine_calls(sample_engine, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    counting = _Counting(sample_engine)
    app = create_app(ServiceSettings(db_url=f"sqlite:///{tmp_path / 'b.db'}"), engine=counting)
    with TestClient(app, base_url=BASE_URL) as client:
        with ThreadPoolExecutor(16) as ex:
            bodies = [{"exam_name": NAMES[i % len(NAMES)], "exam_code": str(i)} for i in range(120)]
            responses = list(ex.map(lambda b: client.post("/lookup", json=b), bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    for body, r in zip(bodies, responses, strict=True):
        want = sample_engine.lookup(ExamQuery(body["exam_name"], exam_code=body["exam_code"]))
        assert r.json()["result"]["clean_name"] == (want.best.entry.name if want.best else None)
    assert 0 < counting.many_calls <= len(bodies)
