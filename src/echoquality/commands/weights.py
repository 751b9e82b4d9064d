"""`echoquality download-weights` and `echoquality check-weights`."""

from __future__ import annotations

from pathlib import Path

import typer


def download_weights_cmd(
    url: str = typer.Option(..., "--url", help="http(s):// or file:// URL of the weights file."),
    output: Path = typer.Option(
        Path("weights/video_quality_model.pt"), "--output", "-o", help="Where to save the file."
    ),
    sha256: str = typer.Option(
        None,
        "--sha256",
        help="Expected SHA-256 (hex). Default: the reference weights' hash. 'skip' disables the check "
        "(only for your own files).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing file with other content."),
    timeout: float = typer.Option(60.0, "--timeout", help="Network timeout in seconds."),
) -> None:
    """Download model weights, verify the SHA-256, then move them into place (never a partial file).

    The reference weights are not distributed with this project (their licence is undocumented): pass the URL you were given. The download streams to a temporary file beside --output and is renamed only after the hash matched.

    Exit 0 on success, 1 on download or hash errors.
    """
    from rich.console import Console

    from echoquality.model import REFERENCE_WEIGHTS_SHA256
    from echoquality.model.weights import DownloadError, download_weights, sha256_of

    console = Console()
    expected: str | None = REFERENCE_WEIGHTS_SHA256
    if sha256 is not None:
        expected = None if sha256.strip().lower() == "skip" else sha256.strip().lower()
    try:
        path = download_weights(url, output, expected, force=force, timeout=timeout)
    except DownloadError as exc:
        Console(stderr=True).print(f"[red]download failed:[/] {exc}")
        raise typer.Exit(1) from exc
    digest = sha256_of(path)
    ref = " (the reference weights)" if digest == REFERENCE_WEIGHTS_SHA256 else ""
    console.print(f"[green]saved[/] {path}  sha256 {digest}{ref}")


def check_weights_cmd(
    weights: str = typer.Argument(
        None, help="Weights file (default: $ECHOQUALITY_WEIGHTS, then weights/...)."
    ),
) -> None:
    """Check that a weights file loads into the quality network; print its architecture and SHA-256."""
    from rich.console import Console

    from echoquality.model import WeightsError, architecture_of, load_state_dict_checked, resolve_weights_path
    from echoquality.model.weights import sha256_of, weights_note

    console, err = Console(), Console(stderr=True)
    path = resolve_weights_path(weights)
    if path is None:
        err.print("[red]no weights given or found[/] (see `echoquality infer --help`)")
        raise typer.Exit(2)
    try:
        sd = load_state_dict_checked(path)
    except WeightsError as exc:
        err.print(f"[red]weights error:[/] {exc}")
        raise typer.Exit(1) from exc
    digest = sha256_of(path)
    arch = architecture_of(sd)
    n = sum(int(v.numel()) for v in sd.values())
    console.print(f"[green]ok[/] {path}: {arch}, {len(sd)} tensors, {n:,} values, sha256 {digest}")
    note = weights_note(path, digest, arch)
    console.print(note or "These are the reference weights.")


def register(app: typer.Typer) -> None:
    """Add ``download-weights`` and ``check-weights`` to *app*."""
    app.command("download-weights")(download_weights_cmd)
    app.command("check-weights")(check_weights_cmd)
