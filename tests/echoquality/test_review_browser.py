"""End to end in a real browser (Playwright driving Debian's Chromium) against `echoquality review` on
127.0.0.1 over a synthetic run scored by the tiny network: filter to FAIL, open a clip, see the model's
16 frames and the Grad-CAM overlay, label three clips by keyboard, export, and feed the CSV to
`prepare-data --labels`. Saves screenshots under docs/screenshots/echo_*.png with
RADQC_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import csv
import socket
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
pytest.importorskip("fastapi", reason="the review app needs FastAPI")

sys.path.insert(0, str(Path(__file__).parent))
from _review_fixture import ReviewRun, build_run  # noqa: E402

from echoquality.cli import app as cli_app  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ReviewRun:
    return build_run(tmp_path_factory.getbasetemp() / "review_run")


@pytest.fixture(scope="module")
def server(run: ReviewRun, tmp_path_factory: pytest.TempPathFactory):
    """The review app under uvicorn on a free loopback port, in a thread of this process (the test
    process has torch and the decoders imported already), with one preview worker process."""
    import threading

    import uvicorn

    from echoquality.review.app import ReviewSettings, create_app

    tmp = tmp_path_factory.mktemp("review_browser")
    port = _free_port()
    settings = ReviewSettings(run.out, data_dir=run.raw, workers=1, workspace=tmp / "ws")
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert thread.is_alive(), "server thread stopped"
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield base, tmp
    finally:
        srv.should_exit = True
        thread.join(timeout=60)


def _loaded(page, selector: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        "sel => { const el = document.querySelector(sel); return el && el.complete && el.naturalWidth > 0; }",
        arg=selector,
        timeout=timeout,
    )


def test_filter_open_gradcam_label_export_prepare(
    server, watched_page, run: ReviewRun, tmp_path: Path, shots: Path
) -> None:
    base, _ = server
    page, foreign, errors = watched_page(base, 950)

    # 1. gallery of the whole run, then filter to FAIL
    page.goto(base + "/")
    page.fill("#reviewer", "Dr Test")
    page.press("#reviewer", "Tab")
    page.select_option("#filters select[name=status]", "FAIL")
    page.wait_for_url("**status=FAIL**")
    statuses = page.eval_on_selector_all("#gallery li", "els => els.map(e => e.dataset.status)")
    assert statuses and set(statuses) == {"FAIL"}
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=90_000,
    )
    page.screenshot(path=str(shots / "echo_review_gallery.png"))

    # 2. open a clip: the 16 frames the model saw, the sector mask, the cine and Grad-CAM
    page.click("#gallery li a")
    page.wait_for_selector("#clip")
    _loaded(page, "#model-input")
    _loaded(page, "#mask-view")
    assert page.eval_on_selector("#model-input", "i => [i.naturalWidth, i.naturalHeight]") == [
        8 * 112,
        2 * 112,
    ]
    page.wait_for_function("() => document.querySelector('#frame-no').textContent.startsWith('frame')")
    page.keyboard.press("c")
    _loaded(page, "#gradcam", timeout=120_000)
    assert page.is_visible("#gradcam")
    page.keyboard.press("Space")  # pause so the screenshot shows a still frame
    page.screenshot(path=str(shots / "echo_review_clip.png"), full_page=True)

    # 3. label three clips by keyboard; each label moves on to the next most uncertain clip
    labelled = {}
    for key, value in (("g", "1"), ("p", "0"), ("g", "1")):
        page.wait_for_selector("#clip")
        cid = page.get_attribute("#clip", "data-clip-id")
        url = page.url
        page.keyboard.press(key)
        page.wait_for_url(lambda u, url=url: u != url, timeout=30_000)
        labelled[cid] = value
    assert len(labelled) == 3

    # 4. export the labels CSV from the header link
    page.goto(base + "/?label=labelled")
    assert len(page.query_selector_all("#gallery li")) == 3
    with page.expect_download() as dl:
        page.click("#export-csv")
    csv_path = tmp_path / "review_labels.csv"
    dl.value.save_as(csv_path)
    rows = list(csv.DictReader(csv_path.open(newline="")))
    assert sorted(r["label"] for r in rows) == sorted(labelled.values())
    assert not any(ident in csv_path.read_text() for ident in run.identifiers)
    assert not foreign, foreign
    assert not errors, errors

    # 5. the export goes straight into prepare-data --labels
    out = tmp_path / "training"
    res = CliRunner().invoke(
        cli_app,
        ["prepare-data", "--results", str(run.out), "--data-dir", str(run.raw), "--output", str(out),
         "--labels", str(csv_path), "--no-pseudo-labels"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ann = list(csv.DictReader((out / "echo_annotations.csv").open(newline="")))
    assert sorted(a["quality_score"] for a in ann) == sorted(labelled.values())


def test_report_screenshot(browser, run: ReviewRun, tmp_path: Path, shots: Path) -> None:
    """The self-contained report renders offline (file://, no request leaves the file)."""
    html = tmp_path / "report.html"
    res = CliRunner().invoke(
        cli_app, ["report", "--results", str(run.out), "--html", str(html), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri())
    assert page.eval_on_selector_all("#worst img", "els => els.every(i => i.naturalWidth > 0)")
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    page.screenshot(path=str(shots / "echo_report.png"), full_page=True)
    page.close()
