"""Server-rendered web app pages (Jinja2 templates, local CSS/JS only: works offline).

Pages read from the store directly; every write goes through the JSON API from ``static/app.js``,
so the web app and scripts share one set of validated, key-protected endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from nhs_lookup import __version__
from nhs_lookup.service.actions import build_consolidated, mapping_detail
from nhs_lookup.service.db import QueueFilter
from nhs_lookup.service.exports import review_summary
from nhs_lookup.service.review import BANDS, STATUSES, band_of
from nhs_lookup.service.schemas import MAX_INT64
from nhs_lookup.service.settings import ServiceSettings

SERVICE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = SERVICE_DIR / "templates"
STATIC_DIR = SERVICE_DIR / "static"
SHORTCUTS_REVIEW = [
    ("a", "approve the proposed target"),
    ("1 - 9", "approve candidate 1-9 instead"),
    ("n", "mark no match"),
    ("f", "flag for a second opinion"),
    ("d", "defer"),
    ("r", "reject the proposal (the engine proposes another)"),
    ("u", "undo the last decision (back to the engine's proposal)"),
    ("j or →", "next mapping in the queue"),
    ("/", "search the catalogue"),
    ("c", "write a comment"),
    ("q", "back to the queue"),
]
SHORTCUTS_QUEUE = [
    ("j / k", "move down / up"),
    ("Enter", "open the selected mapping"),
    ("a", "approve the selected mapping's proposal"),
    ("x", "tick / untick the selected row (then 'Apply to selected')"),
    ("u", "undo the last decision"),
    ("click a heading", "sort the rows shown"),
]


def _queue_filter(
    status: str, data_source: str, modality: str, band: str, flag: str, q: str
) -> tuple[QueueFilter, dict[str, str]]:
    """The queue filter from page query parameters, and the non-empty parameters to carry in links."""
    f = QueueFilter(
        status or "needs_review", data_source or None, modality or None, band or None, flag or None, q or None
    )
    raw = {
        "status": status,
        "data_source": data_source,
        "modality": modality,
        "band": band,
        "flag": flag,
        "q": q,
    }
    return f, {k: v for k, v in raw.items() if v}


def pages_router(settings: ServiceSettings) -> APIRouter:
    """The web app's pages (``/``, ``/ui/queue``, ``/ui/review/{id}``, ``/ui/consolidated``)."""
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals.update(
        version=__version__,
        api_key_required=bool(settings.api_key),
        statuses=STATUSES,
        bands=list(BANDS),
        band_of=band_of,
        bulk_default=settings.review.bulk_approve_default,
    )

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context)

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        ctx = request.app.state.ctx
        summary = review_summary(ctx.store.proposal_counts())
        return page(
            request,
            "index.html",
            jobs=ctx.store.list_jobs(20),
            summary=summary,
            facets=ctx.store.facets(),
            title="Upload & jobs",
            active="home",
        )

    @router.get("/ui/queue", response_class=HTMLResponse)
    def queue_page(
        request: Request,
        status: str = "needs_review",
        data_source: str = "",
        modality: str = "",
        band: str = "",
        flag: str = "",
        q: str = "",
        offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    ) -> HTMLResponse:
        ctx = request.app.state.ctx
        f, params = _queue_filter(status, data_source, modality, band, flag, q)
        limit = 100
        rows, total = ctx.store.queue(f, offset, limit)
        return page(
            request,
            "queue.html",
            rows=rows,
            total=total,
            offset=offset,
            limit=limit,
            f=f,
            params=params,
            qs=urlencode(params),
            facets=ctx.store.facets(),
            shortcuts=SHORTCUTS_QUEUE,
            title="Review queue",
            active="queue",
        )

    @router.get("/ui/review/{mapping_id}", response_class=HTMLResponse)
    def review_page(
        request: Request,
        mapping_id: Annotated[int, PathParam(ge=0, le=MAX_INT64)],
        status: str = "needs_review",
        data_source: str = "",
        modality: str = "",
        band: str = "",
        flag: str = "",
        q: str = "",
    ) -> HTMLResponse:
        ctx = request.app.state.ctx
        m = ctx.mapping_or_404(mapping_id)
        f, params = _queue_filter(status, data_source, modality, band, flag, q)
        detail = mapping_detail(ctx, m, f)
        proposal = detail.proposal or {}
        candidates = proposal.get("all_candidates") or []
        comp = proposal.get("candidate_components") or {}
        return page(
            request,
            "review.html",
            m=detail,
            proposal=proposal,
            candidates=candidates,
            candidate_components=comp,
            input_components=proposal.get("components") or {},
            target_components=comp.get(detail.target_name or "", {}),
            qs=urlencode(params),
            shortcuts=SHORTCUTS_REVIEW,
            title=f"Review: {m.exam_name}",
            active="queue",
        )

    @router.get("/ui/consolidated", response_class=HTMLResponse)
    def consolidated_page(request: Request, data_source: str = "") -> HTMLResponse:
        ctx = request.app.state.ctx
        view = build_consolidated(ctx.store.all_mappings(data_source or None))
        return page(
            request,
            "consolidated.html",
            view=view,
            data_source=data_source,
            facets=ctx.store.facets(),
            title="Consolidated view",
            active="consolidated",
        )

    return router
