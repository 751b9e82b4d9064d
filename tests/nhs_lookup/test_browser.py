"""End-to-end in a real browser (Playwright driving Debian's Chromium) against `nhs-lookup serve` on
127.0.0.1: upload a file, sort the queue, multi-select administrative rows, review mappings (keyboard
shortcuts included), undo a decision, bulk-approve after a confirmation, download an export and check
its contents. Saves screenshots of the main pages under docs/screenshots/ with
RADQC_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import nhs_lookup

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE_CASES = Path(nhs_lookup.__file__).parent / "data" / "sample_cases.json"
REVIEWER = "Dr Test"

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server process on a free loopback port with its own database."""
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {**os.environ, "NHS_LOOKUP_CACHE": str(tmp / "cache")}
    env.pop("NHS_LOOKUP_API_KEY", None)
    src = str(Path(nhs_lookup.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    log = (tmp / "server.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "nhs_lookup.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp / 'browser.db'}",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=30)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield base, api, tmp
    finally:
        api.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def mapping(api: httpx.Client, mapping_id: int) -> dict:
    return api.get(f"/mappings/{mapping_id}").json()


def review_id(page) -> int:
    return int(page.locator("#review").get_attribute("data-mapping-id"))


def wait_leaving(page, url: str) -> None:
    page.wait_for_url(lambda u: u != url, timeout=15_000)
    page.wait_for_load_state("domcontentloaded")


def test_upload_review_bulk_approve_and_export(server, watched_page, shots):
    base, api, tmp = server
    page, foreign, errors = watched_page(base, 1000)

    # 1. upload a file and watch the job finish (the page reloads when it is done)
    page.goto(base + "/")
    page.fill("#reviewer", REVIEWER)
    page.press("#reviewer", "Tab")
    page.set_input_files("#upload-file", str(SAMPLE_CASES))
    page.fill("#upload-name", "sample upload")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector('#jobs tr[data-status="done"]', timeout=60_000)
    total = len(json.loads(SAMPLE_CASES.read_text()))
    assert f"{total} / {total}" in page.inner_text("#jobs")
    assert page.locator("#summary tbody tr").count() == len(
        {c["DATA_SOURCE"] for c in json.loads(SAMPLE_CASES.read_text())}
    )
    undecided_no_target = [
        m for m in api.get("/mappings", params={"limit": 500}).json()["items"] if m["target_name"] is None
    ]
    shown = page.locator('#summary [data-field="proposed-no-match"]').all_inner_texts()
    assert sum(map(int, shown)) == len(undecided_no_target) > 0  # engine no-matches shown apart
    page.screenshot(path=str(shots / "upload_and_jobs.png"), full_page=True)

    # 1b. the queue sorts by a column; administrative rows (no proposed row) are ticked together
    #     and marked no match after a confirmation that names the count
    decided: dict[int, str] = {}
    page.goto(base + "/ui/queue")
    page.click("#queue th:has-text('Confidence')")
    values = [
        float(v)
        for v in page.locator("#queue tbody td[data-value]").evaluate_all(
            "els => els.map(e => e.dataset.value)"
        )
    ]
    assert values == sorted(values)
    admin = page.locator('#queue tbody tr[data-has-target="false"]')
    admin_ids = [int(admin.nth(i).get_attribute("data-id")) for i in range(admin.count())]
    assert sorted(admin_ids) == sorted(m["id"] for m in undecided_no_target)
    for i in range(admin.count()):
        admin.nth(i).locator("input.pick").check()
    assert page.inner_text("#selected-count") == f"{len(admin_ids)} selected"
    page.select_option("#multi-action", "no_match")
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#multi-apply")
    page.locator("#undo-bar").wait_for(state="visible")  # shown once every decision is stored
    page.wait_for_load_state("domcontentloaded")
    assert dialogs and f"{len(admin_ids)} mapping(s)" in dialogs[0]
    for mid in admin_ids:
        m = mapping(api, mid)
        assert m["status"] == "no_match" and m["reviewer"] == REVIEWER, m
        decided[mid] = "no_match"

    # 2. the review queue, sorted by priority; Enter opens the selected (first) row
    page.goto(base + "/ui/queue")
    rows = page.locator("#queue tbody tr")
    assert rows.count() > 0
    first_id = int(rows.first.get_attribute("data-id"))
    assert first_id == api.get("/mappings", params={"limit": 1}).json()["items"][0]["id"]
    page.screenshot(path=str(shots / "review_queue.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#review")
    assert review_id(page) == first_id

    # 3. review with keyboard shortcuts: 'n' on an engine no-match, 'a' approves a proposal;
    #    each action moves to the next mapping in the queue.
    for _ in range(6):
        mid = review_id(page)
        current = mapping(api, mid)
        url = page.url
        if current["target_name"] is None:
            page.keyboard.press("n")
            decided[mid] = "no_match"
        else:
            page.screenshot(path=str(shots / "review_detail.png"), full_page=True)
            page.keyboard.press("a")
            decided[mid] = "approved"
            wait_leaving(page, url)
            break
        wait_leaving(page, url)
    assert "approved" in decided.values() and "no_match" in decided.values()
    for mid, status in decided.items():
        m = mapping(api, mid)
        assert m["status"] == status and m["reviewer"] == REVIEWER, m
        assert m["history"][-1]["action"] in ("approve", "no_match")

    # 4. pick another candidate with the mouse
    page.wait_for_selector("#review")
    mid = review_id(page)
    buttons = page.locator("#candidates button.choose")
    assert buttons.count() >= 2
    choice = buttons.nth(1).get_attribute("data-choose")
    url = page.url
    buttons.nth(1).click()
    wait_leaving(page, url)
    m = mapping(api, mid)
    assert m["status"] == "approved" and m["target_name"] == choice and m["history"][-1]["action"] == "choose"
    decided[mid] = "approved"

    # 5. catalogue search ('/' focuses it), then use a hit
    page.wait_for_selector("#review")
    mid = review_id(page)
    exam_name = page.inner_text("#exam-name")
    page.keyboard.press("/")
    page.keyboard.type(exam_name)
    page.keyboard.press("Enter")
    page.wait_for_selector("#search-results:not([hidden]) tbody tr")
    hit = page.locator("#search-results tbody tr").first
    hit_name = hit.locator("td").first.inner_text()
    url = page.url
    hit.locator("button").click()
    wait_leaving(page, url)
    m = mapping(api, mid)
    assert (
        m["target_name"] == hit_name and m["status"] == "approved" and m["history"][-1]["action"] == "choose"
    )

    # 5b. undo: 'u' resets the last decision (the catalogue choice) and opens that mapping again
    page.wait_for_selector("#review")
    assert not page.locator("#undo-bar").is_hidden()
    page.keyboard.press("u")
    page.wait_for_url(f"**/ui/review/{mid}", timeout=15_000)
    m = mapping(api, mid)
    assert m["status_by"] == "auto" and m["history"][-1]["action"] == "reset", m
    assert page.locator("#undo-decision").is_disabled()  # nothing left to undo on this exam

    # 6. bulk-approve from the home page: a preview count, a confirmation (cancel changes nothing),
    #    then a result message
    page.goto(base + "/")
    page.fill("#bulk-threshold", "0.6")
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#bulk-approve")
    page.wait_for_selector("#bulk-status:has-text('cancelled')")
    everything = api.get("/mappings", params={"status": "all", "limit": 500}).json()["items"]
    assert not [m for m in everything if m["comment"] and m["comment"].startswith("bulk-approved")]
    preview = dialogs[-1]
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#bulk-approve")
    page.wait_for_selector("#bulk-status:has-text('Approved')")
    bulk_count = int(page.inner_text("#bulk-status").split()[1])
    assert (
        bulk_count > 0 and preview.startswith(f"Approve {bulk_count} mapping(s)") and dialogs[-1] == preview
    )
    page.wait_for_load_state("domcontentloaded")
    everything = api.get("/mappings", params={"status": "all", "limit": 500}).json()["items"]
    bulk = [m for m in everything if m["comment"] and m["comment"].startswith("bulk-approved")]
    assert len(bulk) == bulk_count and all(m["confidence"] >= 0.6 for m in bulk)
    for mid, status in decided.items():  # human decisions untouched
        assert mapping(api, mid)["status"] == status

    # 7. download the approved-only CSV export and check its contents
    page.goto(base + "/")
    with page.expect_download() as info:
        page.click("#export-csv")
    path = tmp / "export.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    expected = {m["id"]: m for m in everything if m["status"] in ("approved", "no_match")}
    assert len(rows) == len(expected) == bulk_count + len(decided)
    by_key = {(r["data_source"], r["exam_code"], r["exam_name"]): r for r in rows}
    for m in expected.values():
        r = by_key[(m["data_source"] or "", m["exam_code"] or "", m["exam_name"])]
        assert r["status"] == m["status"] and r["reviewer"] == REVIEWER
        assert r["proposed_name"] == (m["target_name"] or "" if m["status"] == "approved" else "")
    with page.expect_download() as info:
        page.click("#export-fhir")
    fhir = json.loads(Path(info.value.path()).read_text())
    assert fhir["resourceType"] == "ConceptMap" and sum(len(g["element"]) for g in fhir["group"]) == len(rows)

    # 8. consolidated view
    page.goto(base + "/ui/consolidated")
    assert page.locator("#consolidated tbody tr").count() > 0
    page.screenshot(path=str(shots / "consolidated.png"), full_page=True)

    # 9. the API docs render offline (Swagger UI from local files) when swagger-ui-bundle-v2 is installed
    try:
        import swagger_ui_bundle  # noqa: F401

        page.goto(base + "/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        assert page.locator(".opblock").count() >= 10
    except ImportError:
        pass

    assert not foreign, f"requests left the server: {foreign}"
    assert not errors, f"browser errors: {errors}"
