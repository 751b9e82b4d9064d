"""`echoquality review` web app (FastAPI TestClient, previews made by threads): gallery filters,
privacy (no patient field in any page, image or export; burned-in text masked), previews reused from
the disk cache, a large run answering while previews are pending, labels -> prepare-data --labels,
and 4xx (never 500) for malformed requests."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs FastAPI (pip install -e '.[review]')")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _review_fixture import ReviewRun, build_run  # noqa: E402

from echoquality.cli import app as cli_app  # noqa: E402
from echoquality.review.app import ReviewSettings, create_app  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ReviewRun:
    return build_run(tmp_path_factory.getbasetemp() / "review_run")


def _client(run: ReviewRun, workspace: Path, **kw) -> TestClient:
    settings = ReviewSettings(run.out, workers=0, workspace=workspace, **kw)
    return TestClient(create_app(settings, preview_executor=kw.pop("executor", None)), base_url=BASE)


def _ids(html: str) -> list[str]:
    return re.findall(r'data-clip-id="([0-9a-f]{16})"', html)


def _rows(run: ReviewRun) -> list[dict[str, str]]:
    with (run.out / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_gallery_filters_sort_and_pages(run: ReviewRun, tmp_path: Path) -> None:
    rows = _rows(run)
    n_fail = sum(r["status"] == "FAIL" for r in rows)
    n_skip = sum(bool(r["skip_reason"]) for r in rows)
    with _client(run, tmp_path) as c:
        page = c.get("/").text
        assert len(_ids(page)) == len(rows) and f"{len(rows)} of {len(rows)} files" in page
        fail = c.get("/", params={"status": "FAIL"}).text
        assert 0 < n_fail == len(_ids(fail)) == fail.count('data-status="FAIL"')
        skipped = c.get("/", params={"status": "SKIPPED"}).text
        assert len(_ids(skipped)) == n_skip and "not_dicom" in skipped
        by_score = c.get("/", params={"sort": "score_asc", "status": "PASS"}).text
        scores = [float(s) for s in re.findall(r'class="score">([0-9.]+)<', by_score)]
        assert scores == sorted(scores) and len(scores) == len(rows) - n_fail - n_skip
        p2 = c.get("/", params={"per_page": 4, "page": 2}).text
        assert len(_ids(p2)) == 4 and "page 2 /" in p2 and _ids(p2)[0] not in _ids(c.get("/?per_page=4").text)
        assert len(_ids(c.get("/", params={"machine": "epiq7c"}).text)) == sum(
            r["machine_type"] == "epiq7c" for r in rows
        )
        assert len(_ids(c.get("/", params={"skip": "not_dicom"}).text)) == 1


def _collect_everything(c: TestClient) -> list[bytes]:
    """Every page, image and export a reviewer can reach, after labelling two clips."""
    bodies: list[bytes] = []
    gallery = c.get("/")
    bodies.append(gallery.content)
    for q in ("status=FAIL", "status=SKIPPED", "sort=folder", "label=labelled"):
        bodies.append(c.get("/?" + q).content)
    ids = _ids(gallery.text)
    for n, cid in enumerate(ids):
        page = c.get(f"/clips/{cid}")
        assert page.status_code == 200, page.text  # skipped and unreadable files too
        bodies.append(page.content)
        for kind in ("thumb", "input", "mask", "cine"):
            bodies.append(c.get(f"/clips/{cid}/media/{kind}").content)
        if n < 2:
            r = c.post(
                "/api/labels", json={"clip_id": cid, "label": "good", "reviewer": "Dr A", "comment": "ok"}
            )
            assert r.status_code == 201, r.text
            bodies.append(r.content)
            bodies.append(c.get(f"/api/clips/{cid}/labels").content)
    for url in ("/export/labels.csv", "/export/labels.json", "/api/stats", "/health"):
        r = c.get(url)
        assert r.status_code == 200, (url, r.text)
        bodies.append(r.content)
    bodies.append(c.get("/next", follow_redirects=True).content)
    return bodies


def test_no_patient_identifier_in_any_page_image_or_export(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path) as c:
        bodies = _collect_everything(c)
    assert len(run.identifiers) >= 4 and any("^" in i for i in run.identifiers)
    for needle in run.identifiers:
        for i, body in enumerate(bodies):
            assert needle.encode() not in body, (needle, i, body[:200])
    for folder in run.folders:  # folder names carry the PatientID: shown as aliases
        assert not any(folder.encode() in b for b in bodies)


def test_identifiers_only_with_the_flag(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path, show_identifiers=True) as c:
        page = c.get("/").text
    assert any(f in page for f in run.folders)


def _thumb_frame(c: TestClient, cid: str) -> np.ndarray:
    from PIL import Image

    r = c.get(f"/clips/{cid}/media/thumb")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def test_burned_in_text_is_masked_unless_raw_frames(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path / "a") as c:
        cid = _ids(c.get("/?status=PASS").text)[0]
        masked = _thumb_frame(c, cid)
    with _client(run, tmp_path / "b", raw_frames=True) as c:
        raw = _thumb_frame(c, cid)
        assert "Raw frames" in c.get("/").text
    h, w = raw.shape[:2]
    corner = (slice(0, h // 5), slice(0, w // 3))  # the generator's burned-in text block
    assert raw[corner].max() > 100  # text is there in the raw frame...
    assert masked[corner].max() < 40  # ...and black in the default preview (WebP noise aside)
    assert masked[h // 2, w // 2].sum() > 0 or masked[h // 2 :, :].max() > 100  # the sector stays


def test_previews_reused_on_second_open(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path) as c:
        cid = _ids(c.get("/?status=PASS").text)[0]
        first = c.get(f"/clips/{cid}/media/thumb").content
        stats = c.get("/api/stats").json()["previews"]
        assert stats["generated"] == 1 and stats["reused"] == 0
        files = sorted((tmp_path / "previews").rglob("*.webp"))
        mtime = files[0].stat().st_mtime_ns
        assert c.get(f"/clips/{cid}/media/thumb").content == first
        assert c.get(f"/clips/{cid}/media/input").status_code == 200  # same decode job: no new work
        stats = c.get("/api/stats").json()["previews"]
        assert stats["generated"] == 1 and stats["reused"] == 2
    with _client(run, tmp_path) as c:  # a new server on the same workspace
        assert c.get(f"/clips/{cid}/media/thumb").content == first
        assert c.get("/api/stats").json()["previews"] == {
            "generated": 0,
            "reused": 1,
            "failed": 0,
            "pending": 0,
        }
    assert files[0].stat().st_mtime_ns == mtime


class _NeverRuns(Executor):
    """A pool whose jobs never start: every preview stays pending."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[override]
        self.submitted += 1
        return Future()


def test_large_run_gallery_answers_while_previews_are_pending(run: ReviewRun, tmp_path: Path) -> None:
    rows = [r for r in _rows(run) if r["score"]]
    big = tmp_path / "big"
    big.mkdir()
    with (big / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for i in range(3000):
            r = dict(rows[i % len(rows)])
            r["key"] = f"copy{i:05d}/{r['key']}"
            w.writerow(r)
    pool = _NeverRuns()
    settings = ReviewSettings(
        big, data_dir=run.raw, workers=0, workspace=tmp_path / "ws", preview_wait_s=0.05
    )
    with TestClient(create_app(settings, preview_executor=pool), base_url=BASE) as c:
        page = c.get("/", params={"per_page": 100})
        assert page.status_code == 200 and len(_ids(page.text)) == 100 and "3000 of 3000" in page.text
        assert pool.submitted == 0  # the gallery itself never waits for previews
        cid = _ids(page.text)[0]
        assert c.get(f"/clips/{cid}/media/thumb").status_code == 503  # still pending
        assert c.get("/", params={"page": 30}).status_code == 200
        assert c.get("/api/stats").json()["previews"]["pending"] == 1 and pool.submitted == 1


PROBES_GET = [
    "/clips/zzzz",
    "/clips/0123456789abcdef",
    "/clips/0123456789abcdef/media/thumb",
    "/clips/0123456789abcdef/gradcam",
    "/clips/../../etc/passwd",
    "/?page=0",
    "/?page=-3",
    "/?page=abc",
    "/?per_page=100000",
    "/?status=MAYBE",
    "/?sort=random",
    "/?label=bad",
    "/?folder=" + "x" * 500,
    "/next?after=not-an-id",
    "/api/clips/nothex/labels",
    "/export/labels.xml",
]


def test_malformed_requests_get_4xx_never_500(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path) as c:
        ids = _ids(c.get("/").text)
        skipped = _ids(c.get("/?status=SKIPPED").text)[0]
        probes = [c.get(u) for u in PROBES_GET]
        probes.append(c.get(f"/clips/{ids[0]}/media/video"))
        probes.append(c.get(f"/clips/{skipped}/media/thumb"))
        probes.append(c.get(f"/clips/{skipped}/gradcam"))
        for body in (
            "not json",
            "[]",
            "{}",
            '{"clip_id": "0123456789abcdef", "label": "good", "reviewer": "x"}',
            json.dumps({"clip_id": ids[0], "label": "excellent", "reviewer": "x"}),
            json.dumps({"clip_id": ids[0], "label": "good", "reviewer": ""}),
            json.dumps({"clip_id": ids[0], "label": "good", "reviewer": "x", "comment": "c" * 5000}),
            json.dumps({"clip_id": ids[0] + "'; DROP TABLE labels", "label": "good", "reviewer": "x"}),
        ):
            probes.append(c.post("/api/labels", content=body, headers={"content-type": "application/json"}))
        probes.append(c.post("/api/labels", json={"clip_id": ids[0], "label": "good", "reviewer": "x"},
                             headers={"origin": "http://evil.example"}))  # fmt: skip
        probes.append(c.get("/", headers={"host": "evil.example"}))
        codes = [r.status_code for r in probes]
        assert all(400 <= s < 500 for s in codes), list(zip(PROBES_GET + ["..."] * 20, codes, strict=False))
        assert all(
            "error" in r.json()
            for r in probes
            if r.headers.get("content-type", "").startswith("application/json")
        )
        assert c.get("/api/stats").json()["labelled"] == 0


def test_api_key_protects_writes(run: ReviewRun, tmp_path: Path) -> None:
    with _client(run, tmp_path, api_key="s3cret") as c:
        cid = _ids(c.get("/").text)[0]
        body = {"clip_id": cid, "label": "poor", "reviewer": "x"}
        assert c.post("/api/labels", json=body).status_code == 401
        assert c.post("/api/labels", json=body, headers={"x-api-key": "wrong"}).status_code == 401
        assert c.post("/api/labels", json=body, headers={"x-api-key": "s3cret"}).status_code == 201


def test_labels_keep_history_and_export_feeds_prepare_data(run: ReviewRun, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with _client(run, ws) as c:
        ids = _ids(c.get("/?sort=uncertainty&status=PASS").text)[:2] + _ids(c.get("/?status=FAIL").text)[:2]
        plan = [(ids[0], "poor"), (ids[0], "good"), (ids[1], "poor"), (ids[2], "unsure"), (ids[3], "poor")]
        for cid, label in plan:
            r = c.post("/api/labels", json={"clip_id": cid, "label": label, "reviewer": "Dr B"})
            assert r.status_code == 201 and r.json()["next_url"].startswith("/clips/")
        assert r.json()["next_url"] not in {f"/clips/{i}" for i in ids}  # next = an unlabelled clip
        hist = c.get(f"/api/clips/{ids[0]}/labels").json()["history"]
        assert [h["label"] for h in hist] == ["poor", "good"] and hist[0]["reviewer"] == "Dr B"
        exported = c.get("/export/labels.json").json()["labels"]
        assert len(exported) == len(plan) and {e["folder"] for e in exported} <= {
            f"{m}-F000{i}" for m in ("affiniti70g", "epiq7c", "vivide95") for i in (1, 2, 3)
        }
        text = c.get("/export/labels.csv").text
        assert c.get("/export/labels.csv").text == text  # links already there: same export
        assert "/labels.csv" not in text and c.get("/clips/" + ids[0]).text.count("good") >= 1
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["label"] for r in rows) == ["0", "0", "1"]  # unsure is left out
    out = tmp_path / "training"
    res = CliRunner().invoke(
        cli_app,
        ["prepare-data", "--results", str(run.out), "--data-dir", str(run.raw), "--output", str(out),
         "--labels", str(labels_csv), "--no-pseudo-labels"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with (out / "echo_annotations.csv").open(newline="") as fh:
        ann = list(csv.DictReader(fh))
    assert len(ann) == 3 and sorted(a["quality_score"] for a in ann) == ["0", "0", "1"]
    assert {a["label_source"] for a in ann} == {"human"}


def test_review_command_without_a_run_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli_app, ["review", "--results", str(tmp_path), "--port", "0"])
    assert res.exit_code == 2 and "no results.csv" in res.output
