"""`nhs-lookup serve`: the HTTP API and the mapping-review web app in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radqc_common.serving import is_loopback, port_problem


def engine_from_model(model: Path | None, catalogue: Path | None, force_model: bool) -> Any:
    """The fitted engine of ``--model``, or ``None`` (the service then builds the plain engine)."""
    if model is None:
        return None
    from nhs_lookup.commands.fit import model_engine

    return model_engine(model, catalogue, force_model)


def _run_server(settings: Any, host: str, port: int, log_level: str, engine: Any, console: Any) -> None:
    """Start uvicorn on a free port; startup failures become one line and exit code 1."""
    import uvicorn

    from nhs_lookup.service.api import create_app

    busy = port_problem(host, port)
    if busy:
        console.print(f"[red]error:[/red] {busy}")
        raise typer.Exit(1)
    app = create_app(settings, engine=engine)
    console.print(
        f"NHS lookup service on http://{host}:{port}/  (API docs: /docs, database: {settings.db_url})"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    except Exception as exc:  # startup failures (bad catalogue, port in use) -> clear message, exit 1
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    except SystemExit as exc:  # uvicorn exits 3 when startup fails; the documented code is 1
        if exc.code not in (0, None):
            raise typer.Exit(1) from None
        raise


def serve(
    host: Annotated[
        str, typer.Option(help="Interface to bind. Keep 127.0.0.1 unless others must reach the service.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    db: Annotated[
        str,
        typer.Option(help="SQLAlchemy database URL: jobs, results and review decisions are kept here."),
    ] = "sqlite:///nhs_lookup_service.db",
    catalogue: Annotated[
        Path | None,
        typer.Option(
            help="Catalogue file (NHS.json, NICIP CSV/XLSX, RadLex JSON). Default: the bundled sample "
            "or $NHS_LOOKUP_CATALOGUE."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Engine config YAML; an optional 'review:' section sets the auto-flag thresholds."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="NHS_LOOKUP_API_KEY",
            show_envvar=True,
            help="Require this key in the X-API-Key header for write endpoints (batch, decisions, bulk approve).",
        ),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest accepted upload, in MB.")] = 20.0,
    resume: Annotated[
        bool,
        typer.Option(help="Resume batch jobs cut short by a restart (--no-resume marks them 'interrupted')."),
    ] = True,
    job_chunk_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=10_000,
            help="Batch items looked up and committed together (a restart loses at most one chunk of work).",
        ),
    ] = 50,
    log_level: Annotated[str, typer.Option(help="Uvicorn log level.")] = "info",
    lookup_workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="Worker processes for lookups (0: in the server process). More than 0 lets concurrent "
            "requests use more than one core; jobs, resume and the database stay in the one server process.",
        ),
    ] = 0,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A further host name clients use to reach the server (repeatable; '*' allows any). "
            "Requests naming another Host are refused, which stops DNS-rebinding attacks.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model file written by `nhs-lookup fit` (learned terms, calibration)."),
    ] = None,
    force_model: Annotated[
        bool,
        typer.Option("--force-model", help="Load the --model even if it was fitted on another catalogue."),
    ] = False,
) -> None:
    """Run the lookup API (docs at /docs) and the review web app (at /) on HOST:PORT.

    Example: nhs-lookup serve --catalogue ../shared/nhs/NHS.json --db sqlite:///mappings.db
    """
    from rich.console import Console

    from nhs_lookup.service.settings import ServiceSettings, load_config_file

    console = Console(stderr=True)
    if catalogue is not None and not catalogue.is_file():
        console.print(f"[red]error:[/red] catalogue file not found: {catalogue}")
        raise typer.Exit(2)
    settings = ServiceSettings(
        db_url=db,
        catalogue_path=str(catalogue) if catalogue else None,
        config_path=str(config) if config else None,
        api_key=api_key or None,
        max_upload_mb=max_upload_mb,
        resume_jobs=resume,
        job_chunk_size=job_chunk_size,
        lookup_workers=lookup_workers,
        host=host,
        allowed_hosts=tuple(allowed_host or ()),
    )
    if config is not None:
        try:
            settings.engine_config, settings.review = load_config_file(config)
        except (OSError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    if not is_loopback(host) and not settings.api_key:
        console.print(
            f"[yellow]warning:[/yellow] listening on {host} without an API key: anyone who can reach this "
            "port can change mappings. Set --api-key or NHS_LOOKUP_API_KEY."
        )
    _run_server(settings, host, port, log_level, engine_from_model(model, catalogue, force_model), console)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to *app*."""
    app.command("serve")(serve)
