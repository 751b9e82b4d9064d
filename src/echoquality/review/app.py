"""``create_app``: the review web app over one inference run (FastAPI, server-rendered Jinja2 pages,
local static assets only, so it works offline).

Conventions of ``nhs-lookup serve``: loopback by default, Host / cross-origin checks and a strict
Content-Security-Policy (``radqc_common.security``), an optional API key for writes.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from radqc_common.security import API_KEY_MESSAGE, SecurityMiddleware, api_key_ok, host_policy

from .catalog import Catalog, build_catalog, preprocess_config_of_run
from .explain import GradcamService, weights_from_run
from .previews import PreviewService
from .store import LabelStore

HERE = Path(__file__).parent


@dataclass
class ReviewSettings:
    """Everything `echoquality review` passes to the app."""

    results_dir: Path
    data_dir: Path | None = None
    workspace: Path | None = None  # labels.sqlite, previews/, links/; default <results>/review
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    api_key: str | None = None
    workers: int = 2  # preview worker processes (0: threads in the server process)
    weights: Path | None = None
    show_identifiers: bool = False  # real folder names and paths in pages and exports
    raw_frames: bool = False  # previews without the sector mask (burned-in text visible)
    preview_wait_s: float = 120.0

    @property
    def workspace_dir(self) -> Path:
        return Path(self.workspace) if self.workspace else Path(self.results_dir) / "review"


@dataclass
class ReviewContext:
    """Shared state of one app instance."""

    settings: ReviewSettings
    catalog: Catalog
    store: LabelStore
    previews: PreviewService
    gradcam: GradcamService
    extra: dict[str, object] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def require_key(request: Request) -> None:
    """Writes need ``X-API-Key`` when the server has a key."""
    if not api_key_ok(request):
        raise ApiError(401, API_KEY_MESSAGE)


def build_context(settings: ReviewSettings, preview_executor=None) -> ReviewContext:
    """Load the run and open the workspace (raises results_table.ResultsError when there is no run)."""
    catalog = build_catalog(
        settings.results_dir, settings.data_dir, show_identifiers=settings.show_identifiers
    )
    ws = settings.workspace_dir
    ws.mkdir(parents=True, exist_ok=True)
    cfg = preprocess_config_of_run(settings.results_dir)
    previews = PreviewService(
        ws / "previews",
        masked=not settings.raw_frames,
        workers=settings.workers,
        cfg=cfg,
        executor=preview_executor,
    )
    weights = settings.weights or weights_from_run(settings.results_dir)
    return ReviewContext(
        settings,
        catalog,
        LabelStore(ws / "labels.sqlite"),
        previews,
        GradcamService(ws / "gradcam", weights, cfg),
    )


def create_app(settings: ReviewSettings, *, preview_executor=None) -> FastAPI:
    """The ASGI app; previews are made by *preview_executor* when given (tests), else by a lazily
    started pool of ``settings.workers`` processes."""
    from .routes import router

    ctx = build_context(settings, preview_executor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ctx.previews.shutdown()
        ctx.store.close()

    app = FastAPI(
        title="EchoQuality review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
        return JSONResponse({"error": "invalid request", "details": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    app.add_middleware(SecurityMiddleware, hosts=host_policy(settings.host, settings.allowed_hosts))
    return app
