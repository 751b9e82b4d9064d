"""Verified weights download against a local HTTP server (127.0.0.1, no network), and weight notes."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.model import REFERENCE_WEIGHTS_SHA256
from echoquality.model.weights import (
    DownloadError,
    download_weights,
    is_reference,
    save_random_weights,
    sha256_of,
    weights_note,
    write_sidecar,
)

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, spans several read chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path == "/weights.pt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/truncated.pt":
            # announces the full length, sends a third, then closes the connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _flat(text: str) -> str:
    """Console output with Rich's line wrapping undone."""
    return " ".join(text.split())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_success_verifies_hash(server: str, tmp_path: Path) -> None:
    target = tmp_path / "weights" / "model.pt"
    path = download_weights(f"{server}/weights.pt", target, PAYLOAD_SHA, progress=False)
    assert path == target
    assert target.read_bytes() == PAYLOAD
    assert _leftovers(target.parent) == ["model.pt"]  # no temporary file left behind
    # a second call with the same hash keeps the file (no re-download needed)
    assert download_weights(f"{server}/nothing-here", target, PAYLOAD_SHA, progress=False) == target


def test_hash_mismatch_leaves_nothing(server: str, tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_weights(f"{server}/weights.pt", target, "0" * 64, progress=False)
    assert _leftovers(tmp_path) == []


def test_default_hash_is_the_reference(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="reference file is 125,382,818 bytes"):
        download_weights(f"{server}/weights.pt", tmp_path / "m.pt", progress=False)
    assert _leftovers(tmp_path) == []


def test_http_404(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_weights(f"{server}/missing.pt", tmp_path / "m.pt", None, progress=False)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="interrupted"):
        download_weights(f"{server}/truncated.pt", tmp_path / "m.pt", None, progress=False, timeout=10)
    assert _leftovers(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot open"):
        download_weights("http://127.0.0.1:9/x.pt", tmp_path / "m.pt", None, progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


def test_existing_different_file_needs_force(server: str, tmp_path: Path) -> None:
    target = tmp_path / "m.pt"
    target.write_bytes(b"my own weights")
    with pytest.raises(DownloadError, match="--force"):
        download_weights(f"{server}/weights.pt", target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == b"my own weights"
    download_weights(f"{server}/weights.pt", target, PAYLOAD_SHA, force=True, progress=False)
    assert target.read_bytes() == PAYLOAD


def test_bad_sha_argument(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="64 hex"):
        download_weights("http://127.0.0.1:9/x", tmp_path / "m.pt", "abc", progress=False)


def test_cli_download(server: str, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "w.pt"
    res = runner.invoke(
        app, ["download-weights", "--url", f"{server}/weights.pt", "-o", str(target), "--sha256", "skip"]
    )
    assert res.exit_code == 0, res.output
    assert sha256_of(target) == PAYLOAD_SHA
    assert PAYLOAD_SHA in _flat(res.output)
    bad = runner.invoke(
        app, ["download-weights", "--url", f"{server}/weights.pt", "-o", str(tmp_path / "x.pt")]
    )
    assert bad.exit_code == 1
    assert "sha256 mismatch" in _flat(bad.output)
    assert not (tmp_path / "x.pt").exists()


def test_notes_for_random_and_reference(tmp_path: Path) -> None:
    assert is_reference(REFERENCE_WEIGHTS_SHA256)
    assert weights_note(tmp_path / "x.pt", REFERENCE_WEIGHTS_SHA256) is None
    path = save_random_weights(tmp_path / "tiny.pt", "tiny", seed=3)
    note = weights_note(path, sha256_of(path), "tiny")
    assert note is not None
    assert "random initialisation (tiny, seed 3)" in note
    assert "not the reference weights" in note
    write_sidecar(path, "trained on synthetic data only", epochs=2)
    assert "trained on synthetic data only" in (weights_note(path, sha256_of(path)) or "")


def test_cli_check_weights(tmp_path: Path) -> None:
    runner = CliRunner()
    path = save_random_weights(tmp_path / "tiny.pt", "tiny", seed=0)
    res = runner.invoke(app, ["check-weights", str(path)])
    assert res.exit_code == 0, res.output
    assert "tiny" in res.output
    assert sha256_of(path) in _flat(res.output)
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"\x00garbage" * 10)
    res = runner.invoke(app, ["check-weights", str(garbage)])
    assert res.exit_code == 1
    assert "not a readable PyTorch weights file" in _flat(res.output)
