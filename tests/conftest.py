"""Session fixtures shared by both systems' scaling tests (real PostgreSQL, a local Ray cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import pg_server, ray_cluster  # noqa: E402,F401  (fixtures)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests save their screenshots: docs/screenshots with RADQC_UPDATE_SCREENSHOTS=1 (to
    refresh the pictures the docs show), else a temporary folder, so a test run leaves the tree clean."""
    if os.environ.get("RADQC_UPDATE_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium under Playwright (browser test modules skip when either is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def watched_page(browser):
    """``open(base, height) -> (page, foreign, errors)``: a page that records requests leaving *base*
    and console/page errors, so a test can assert the app uses only local assets and runs cleanly."""
    contexts = []

    def open_page(base: str, height: int = 1000):
        context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": height})
        contexts.append(context)
        page = context.new_page()
        foreign: list[str] = []
        errors: list[str] = []
        local = (base, "data:", "blob:")
        page.on("request", lambda r: None if r.url.startswith(local) else foreign.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page, foreign, errors

    yield open_page
    for context in contexts:
        context.close()
