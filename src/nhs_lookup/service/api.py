"""The FastAPI application: ``create_app(settings)`` wires the engine, the store, the job runner, the
security middleware and the routers (one per resource, in :mod:`nhs_lookup.service.routes`).

Nothing is global, so tests build as many apps as they like (each against its own database).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from nhs_lookup import __version__
from nhs_lookup.service.batching import MAX_BATCH, Batcher
from nhs_lookup.service.db import Store
from nhs_lookup.service.deps import ServiceContext
from nhs_lookup.service.errors import ApiError, install_error_handlers
from nhs_lookup.service.jobs import JobRunner
from nhs_lookup.service.lookups import EngineLike, answer_batch, answer_one, engine_info
from nhs_lookup.service.pool import PooledEngine
from nhs_lookup.service.routes import catalogue, export, jobs, lookup, mappings
from nhs_lookup.service.routes.pages import STATIC_DIR, pages_router
from nhs_lookup.service.settings import ServiceSettings
from radqc_common.security import SecurityMiddleware, host_policy

__all__ = ["ApiError", "ServiceContext", "create_app", "load_engine"]

log = logging.getLogger("nhs_lookup.service")
DESCRIPTION = (
    "Map local RIS exam names to the NHS imaging procedure catalogue, review the uncertain mappings and "
    "export an approved mapping table. Write endpoints need the `X-API-Key` header when the server was "
    "started with an API key."
)


def load_engine(settings: ServiceSettings) -> EngineLike:
    from nhs_lookup.engine import LookupEngine  # heavy import, kept out of module import

    return LookupEngine.load(settings.engine_config, catalogue_path=settings.catalogue_path)


def _lifespan(settings: ServiceSettings, engine: EngineLike | None):  # noqa: ANN202 - a lifespan factory
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine if engine is not None else load_engine(settings)
        # Worker processes are forked first, before the store and the runner start any thread.
        pool = PooledEngine(eng, settings.lookup_workers) if settings.lookup_workers > 0 else None
        eng = pool or eng
        store = Store(settings.db_url, flag_singletons=settings.review.flag_singletons)
        rules = settings.review
        answers = Batcher(
            lambda queries: answer_batch(eng, store, rules, queries),
            lambda query: answer_one(eng, store, rules, query),
            threads=max(1, settings.lookup_workers),
            max_batch=MAX_BATCH if settings.batch_lookups else 1,
        )
        runner = JobRunner(store, eng, settings.review, settings.job_chunk_size)
        resumed, interrupted = store.recover_jobs(settings.resume_jobs)
        for job_id in resumed:
            runner.submit(job_id)
        if resumed or interrupted:
            log.warning(
                "unfinished jobs from a previous run: %d resumed, %d marked interrupted",
                len(resumed),
                len(interrupted),
            )
        runner.start()
        info = engine_info(eng, settings.catalogue_path)
        app.state.ctx = ServiceContext(settings, store, eng, runner, info, answers)
        try:
            yield
        finally:
            runner.stop()
            store.close()
            answers.close()
            if pool is not None:
                pool.close()

    return lifespan


def create_app(settings: ServiceSettings | None = None, *, engine: EngineLike | None = None) -> FastAPI:
    """Build the app. *engine* lets a caller share one loaded engine between apps (tests, benchmarks)."""
    settings = settings or ServiceSettings()
    app = FastAPI(
        title="NHS lookup service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, engine),
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    _install_docs(app)
    app.add_middleware(SecurityMiddleware, hosts=host_policy(settings.host, settings.allowed_hosts))
    for module in (lookup, jobs, catalogue, mappings, export):
        app.include_router(module.router)
    app.include_router(pages_router(settings))
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs, from local files when the ``swagger-ui-bundle-v2`` package is installed
    (works offline); otherwise FastAPI's default page, which loads Swagger UI from a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
        js, css = "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"
    else:
        log.info("swagger-ui-bundle-v2 not installed: /docs loads Swagger UI from a CDN")
        js = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
        css = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=js,
            swagger_css_url=css,
            swagger_favicon_url="/static/favicon.svg",
        )
