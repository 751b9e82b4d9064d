"""Weights files: hashing, identifying the reference weights, and a verified download.

The reference quality weights (``video_quality_model.pt``) are user-supplied: their origin and licence
are undocumented, so nothing here downloads them by default. ``download_weights`` fetches a URL the user
gives, streams it to a temporary file beside the target while hashing, checks the SHA-256 (the reference
hash by default) and only then renames it into place: a failed or interrupted download never leaves a
partial file.

Weights that are not the reference (random initialisation, synthetic-data training) can carry a sidecar
``<weights>.json`` with a ``weights_note`` that every inference run records and prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from echoquality.model.state_dict import (
    DEFAULT_WEIGHTS_PATH,
    REFERENCE_WEIGHTS_SHA256,
    REFERENCE_WEIGHTS_SIZE,
)

CHUNK = 1 << 20


class DownloadError(Exception):
    """The download failed (HTTP error, interrupted transfer, hash mismatch); nothing was written."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def is_reference(sha256: str) -> bool:
    return sha256.lower() == REFERENCE_WEIGHTS_SHA256


def sidecar_path(weights: Path) -> Path:
    """``model.pt`` -> ``model.pt.json``: optional notes about where the weights came from."""
    return Path(str(weights) + ".json")


def write_sidecar(weights: Path, note: str, **extra: object) -> Path:
    """Record a ``weights_note`` (and any extra facts) next to a weights file."""
    path = sidecar_path(weights)
    path.write_text(json.dumps({"weights_note": note, **extra}, indent=2, default=str) + "\n")
    return path


def weights_note(weights: Path, sha256: str, architecture: str | None = None) -> str | None:
    """A warning to record and print when the weights are not the reference weights (None if they are)."""
    if is_reference(sha256):
        return None
    notes: list[str] = []
    side = sidecar_path(weights)
    if side.is_file():
        try:
            data = json.loads(side.read_text())
            if isinstance(data, dict) and data.get("weights_note"):
                notes.append(str(data["weights_note"]))
        except (OSError, json.JSONDecodeError):
            pass
    if architecture == "tiny":
        notes.append("'tiny' test architecture, not the reference r2plus1d_18")
    notes.append(
        f"not the reference weights (sha256 {sha256[:12]}...): random or synthetic-only weights give "
        "meaningless scores on real echocardiograms"
    )
    return "; ".join(notes)


def save_random_weights(path: Path, architecture: str = "r2plus1d_18", seed: int = 0) -> Path:
    """Save a randomly initialised (seeded) network as a plain state_dict, with a sidecar note.

    Useful to exercise the pipeline without the reference weights; the scores are meaningless.
    """
    import torch

    from echoquality.model.networks import build_model

    torch.manual_seed(seed)
    model = build_model(architecture)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    write_sidecar(path, f"random initialisation ({architecture}, seed {seed}) - scores are meaningless")
    return path


def _default_progress(total: int | None) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A Rich progress bar: returns (advance(n), close())."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    task = progress.add_task("download", total=total)
    progress.start()
    return (lambda n: progress.advance(task, n)), progress.stop


def download_weights(
    url: str,
    output: Path = DEFAULT_WEIGHTS_PATH,
    sha256: str | None = REFERENCE_WEIGHTS_SHA256,
    *,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download *url* to *output*, verifying *sha256* (None: no check). Returns the final path.

    An existing *output* with the expected hash is kept as is; one with another hash is only replaced
    with ``force``. On any failure the temporary file is removed and :class:`DownloadError` raised.
    """
    output = Path(output)
    expected = sha256.lower() if sha256 else None
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise DownloadError(f"--sha256 must be 64 hex characters (or 'skip'), got {sha256!r}")
    if output.exists():
        if output.is_dir():
            raise DownloadError(f"output {output} is a directory; give a file path")
        if expected is not None and sha256_of(output) == expected:
            return output
        if not force:
            raise DownloadError(f"{output} already exists (different content); use --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)

    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    tmp = Path(tmp_name)
    fh = os.fdopen(fd, "wb")
    advance: Callable[[int], None] = lambda n: None  # noqa: E731
    close: Callable[[], None] = lambda: None  # noqa: E731
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "echoquality-download"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadError(f"cannot open {url}: {getattr(exc, 'reason', exc)}") from exc
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress:
                advance, close = _default_progress(total)
            h = hashlib.sha256()
            received = 0
            try:
                while chunk := response.read(CHUNK):
                    fh.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            except (OSError, ValueError) as exc:  # IncompleteRead, reset connection, timeout
                raise DownloadError(f"transfer interrupted after {received} bytes: {exc!r}") from exc
            if total is not None and received != total:
                raise DownloadError(f"transfer interrupted: received {received} of {total} bytes")
            fh.flush()
            os.fsync(fh.fileno())
        fh.close()
        digest = h.hexdigest()
        if expected is not None and digest != expected:
            hint = ""
            if expected == REFERENCE_WEIGHTS_SHA256 and received != REFERENCE_WEIGHTS_SIZE:
                hint = f" (the reference file is {REFERENCE_WEIGHTS_SIZE:,} bytes, got {received:,})"
            raise DownloadError(
                f"sha256 mismatch: expected {expected}, got {digest}{hint}; nothing was saved "
                "(use --sha256 skip only for your own files)"
            )
        os.replace(tmp, output)
        return output
    finally:
        close()
        fh.close()
        tmp.unlink(missing_ok=True)
