"""`echoquality review`: the local review web app over one inference run."""

from __future__ import annotations

from pathlib import Path

import typer

from radqc_common.serving import is_loopback, port_problem


def register(app: typer.Typer) -> None:
    """Add `review` to *app*."""

    @app.command("review")
    def review(
        results: Path = typer.Option(
            Path("results/inference_output"),
            "--results",
            help="Inference output folder (results.csv or summary.json).",
        ),
        data_dir: Path | None = typer.Option(
            None,
            "--data-dir",
            help="Folder the run read (default: from run_info.json; needed if the data moved).",
        ),
        host: str = typer.Option(
            "127.0.0.1", help="Interface to bind. Keep 127.0.0.1 unless others must reach it."
        ),
        port: int = typer.Option(8765, min=0, max=65535, help="TCP port."),
        workspace: Path | None = typer.Option(
            None, "--workspace", help="Labels database and preview cache (default: RESULTS/review)."
        ),
        workers: int = typer.Option(
            2, min=0, max=64, help="Preview worker processes (0: threads in the server)."
        ),
        weights: Path | None = typer.Option(
            None, "--weights", help="Weights for Grad-CAM (default: the run's, from run_info.json)."
        ),
        api_key: str | None = typer.Option(
            None,
            envvar="ECHOQUALITY_REVIEW_API_KEY",
            show_envvar=True,
            help="Require this key in the X-API-Key header to store labels.",
        ),
        allowed_host: list[str] | None = typer.Option(
            None, "--allowed-host", help="A further host name clients use to reach the server (repeatable)."
        ),
        show_identifiers: bool = typer.Option(
            False,
            "--show-identifiers",
            help="Show real folder names and export real paths (may name patients).",
        ),
        raw_frames: bool = typer.Option(
            False,
            "--raw-frames",
            help="Previews without the sector mask: burned-in text (names, dates) visible.",
        ),
        log_level: str = typer.Option("warning", help="Uvicorn log level."),
    ) -> None:
        """Browse a run (gallery, cine, the 16 frames the model saw, Grad-CAM), label clips good / poor /
        unsure and export the labels for `prepare-data --labels`.

        Example: echoquality review --results results/inference_output --data-dir raw_data
        """
        from rich.console import Console

        from echoquality.results_table import ResultsError

        console = Console(stderr=True)
        try:
            import uvicorn

            from echoquality.review.app import ReviewSettings, create_app
        except ImportError as exc:
            console.print(
                f"[red]error:[/red] review needs FastAPI, uvicorn and Jinja2 ({exc}): pip install -e '.[review]'"
            )
            raise typer.Exit(2) from None
        settings = ReviewSettings(
            results_dir=results,
            data_dir=data_dir,
            workspace=workspace,
            host=host,
            allowed_hosts=tuple(allowed_host or ()),
            api_key=api_key or None,
            workers=workers,
            weights=weights,
            show_identifiers=show_identifiers,
            raw_frames=raw_frames,
        )
        if weights is not None and not weights.is_file():
            console.print(f"[red]error:[/red] weights file not found: {weights}")
            raise typer.Exit(2)
        try:
            web = create_app(settings)
        except ResultsError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except OSError as exc:
            console.print(
                f"[red]error:[/red] cannot open the workspace ({exc}); choose one with --workspace DIR"
            )
            raise typer.Exit(2) from None
        if not is_loopback(host) and not settings.api_key:
            console.print(
                f"[yellow]warning:[/yellow] listening on {host} without an API key: anyone who can reach this "
                "port can see the clips and store labels. Set --api-key or ECHOQUALITY_REVIEW_API_KEY."
            )
        busy = port_problem(host, port)
        if busy:
            console.print(f"[red]error:[/red] {busy}")
            raise typer.Exit(1)
        n = len(web.state.ctx.catalog.clips)
        console.print(f"EchoQuality review of {n} files: http://{host}:{port}/  (Ctrl+C to stop)")
        uvicorn.run(web, host=host, port=port, log_level=log_level)
