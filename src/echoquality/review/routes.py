"""Pages (gallery, clip), media (previews, model input, film strip, Grad-CAM), labels and exports.

Pages read the catalog and the label store directly; labels are written through the JSON API from
``static/review.js``. Every malformed request gets a 4xx with a JSON ``error``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from echoquality.dicom import SkipError, read_info
from echoquality.preprocess import sample_indices

from .app import HERE, ApiError, ReviewContext, require_key
from .catalog import LABEL_STATES, SORTS, STATUSES, Clip, ClipQuery
from .exports import ExportError, labels_csv, labels_json
from .previews import PreviewError, cine_indices
from .store import LabelError

router = APIRouter()
templates = Jinja2Templates(directory=str(HERE / "templates"))
ClipId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")]
Short = Annotated[str, Query(max_length=200)]
SHORTCUTS = [
    ("g", "label good, then the next most uncertain clip"),
    ("p", "label poor, then next"),
    ("u", "label unsure, then next"),
    ("space", "play / pause"),
    ("← →", "previous / next frame"),
    ("c", "show Grad-CAM"),
    ("n", "next most uncertain clip without labelling"),
]


def ctx_of(request: Request) -> ReviewContext:
    return request.app.state.ctx


def _clip(ctx: ReviewContext, clip_id: str) -> Clip:
    clip = ctx.catalog.by_id.get(clip_id)
    if clip is None:
        raise ApiError(404, "no such clip in this run")
    return clip


def _page(request: Request, name: str, **context: object) -> HTMLResponse:
    ctx = ctx_of(request)
    base = {
        "api_key_required": bool(ctx.settings.api_key),
        "raw_frames": ctx.settings.raw_frames,
        "identifiers": ctx.settings.show_identifiers,
        "n_clips": len(ctx.catalog.clips),
    }
    return templates.TemplateResponse(request, name, {**base, **context})


@router.get("/health")
def health(request: Request) -> dict[str, object]:
    return {"status": "ok", "clips": len(ctx_of(request).catalog.clips)}


@router.get("/", response_class=HTMLResponse)
def gallery(
    request: Request,
    status: Literal["", "PASS", "FAIL", "SKIPPED"] = "",
    band: Short = "",
    machine: Short = "",
    folder: Short = "",
    skip: Short = "",
    label: Literal["", "unlabelled", "labelled", "good", "poor", "unsure"] = "",
    sort: Literal["uncertainty", "score_asc", "score_desc", "folder"] = "uncertainty",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 60,
) -> HTMLResponse:
    """Every file of the run, filtered and paged; previews load lazily from /clips/{id}/media/thumb."""
    ctx = ctx_of(request)
    q = ClipQuery(status, band, machine, folder, skip, label, sort, page, per_page)
    labels = ctx.store.current_labels()
    result = ctx.catalog.query(q, labels)
    params = {
        k: v for k, v in vars(q).items() if v and k not in ("page",) and not (k == "per_page" and v == 60)
    }
    return _page(
        request,
        "gallery.html",
        q=q,
        result=result,
        labels=labels,
        facets=ctx.catalog.facets(),
        statuses=STATUSES,
        label_states=LABEL_STATES,
        sorts=SORTS,
        threshold=ctx.catalog.threshold,
        link=lambda **kw: "/?" + urlencode({**params, **kw}),
        n_labelled=len(labels),
    )


def _header_facts(clip: Clip) -> dict[str, object]:
    """QC-relevant header fields only (never a patient field)."""
    try:
        info = read_info(clip.source)
    except (SkipError, OSError, ValueError) as exc:
        return {"error": getattr(exc, "reason", type(exc).__name__)}
    return {
        "manufacturer": info.manufacturer,
        "model": info.model,
        "fps": info.fps,
        "photometric": info.photometric,
        "transfer_syntax": info.transfer_syntax,
        "num_frames": info.num_frames,
        "size": f"{info.columns} x {info.rows}",
        "_info": info,
    }


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
async def clip_page(request: Request, clip_id: ClipId) -> HTMLResponse:
    """The cine, the 16 frames the model saw, Grad-CAM on demand, labels with history."""
    ctx = ctx_of(request)
    clip = _clip(ctx, clip_id)
    facts = await run_in_threadpool(_header_facts, clip)
    info = facts.pop("_info", None)
    cfg = ctx.previews.cfg
    sampled = sample_indices(info.num_frames, info.fps, cfg) if info is not None else []
    cine = cine_indices(info.num_frames) if info is not None else []
    history = ctx.store.history(clip.id)
    return _page(
        request,
        "clip.html",
        clip=clip,
        facts=facts,
        sampled=sampled,
        model_frames=cfg.num_frames,
        cine_json=json.dumps(cine),
        cine_columns=8,
        fps=(info.fps if info is not None and info.fps else cfg.default_fps),
        history=history,
        current=history[-1] if history else None,
        threshold=ctx.catalog.threshold,
        shortcuts=SHORTCUTS,
        playable=info is not None and clip.skip_reason is None,
    )


@router.get("/next")
def next_clip(request: Request, after: Annotated[str, Query(pattern=r"^([0-9a-f]{16})?$")] = "") -> Response:
    """Redirect to the most uncertain unlabelled clip (skipping *after*), or to the gallery."""
    ctx = ctx_of(request)
    clip = ctx.catalog.most_uncertain(ctx.store.current_labels(), exclude=[after] if after else [])
    return RedirectResponse(f"/clips/{clip.id}" if clip else "/?label=unlabelled", status_code=303)


async def _await_preview(ctx: ReviewContext, clip: Clip, kind: str) -> Path:
    fut = ctx.previews.request(clip.source, kind)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout=ctx.settings.preview_wait_s)
    except TimeoutError:
        raise ApiError(503, "preview still being made; try again shortly") from None
    except PreviewError as exc:
        raise ApiError(404, f"no preview: {ctx.catalog.redact(str(exc))[:300]}") from None


MEDIA_TYPES = {"thumb": "image/webp", "input": "image/png", "mask": "image/png", "cine": "image/jpeg"}


@router.get("/clips/{clip_id}/media/{kind}")
async def media(
    request: Request, clip_id: ClipId, kind: Literal["thumb", "input", "mask", "cine"]
) -> Response:
    """A cached preview file, made on first request by the preview pool."""
    ctx = ctx_of(request)
    clip = _clip(ctx, clip_id)
    if clip.skip_reason is not None:
        raise ApiError(404, f"no preview: the file was skipped ({clip.skip_reason})")
    path = await _await_preview(ctx, clip, kind)
    return FileResponse(
        path, media_type=MEDIA_TYPES[kind], headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/clips/{clip_id}/gradcam")
async def gradcam(request: Request, clip_id: ClipId) -> Response:
    """Grad-CAM over the 16 model frames (animated GIF), computed on first request."""
    ctx = ctx_of(request)
    clip = _clip(ctx, clip_id)
    if clip.skip_reason is not None:
        raise ApiError(404, f"no Grad-CAM: the file was skipped ({clip.skip_reason})")
    try:
        path = await run_in_threadpool(ctx.gradcam.compute, clip.source)
    except PreviewError as exc:
        raise ApiError(404, f"no Grad-CAM: {ctx.catalog.redact(str(exc))[:300]}") from None
    return FileResponse(path, media_type="image/gif", headers={"Cache-Control": "private, max-age=3600"})


class LabelIn(BaseModel):
    clip_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    label: Literal["good", "poor", "unsure"]
    reviewer: str = Field(min_length=1, max_length=100)
    comment: str = Field(default="", max_length=2000)


@router.post("/api/labels", status_code=201, dependencies=[Depends(require_key)])
def add_label(request: Request, body: LabelIn) -> dict[str, object]:
    """Store a decision; answers with the event and the next most uncertain clip's URL."""
    ctx = ctx_of(request)
    clip = _clip(ctx, body.clip_id)
    try:
        event = ctx.store.add(clip.id, body.label, body.reviewer, body.comment)
    except LabelError as exc:
        raise ApiError(422, str(exc)) from None
    nxt = ctx.catalog.most_uncertain(ctx.store.current_labels(), exclude=[clip.id])
    return {"label": event.to_dict(), "next_url": f"/clips/{nxt.id}" if nxt else "/?label=unlabelled"}


@router.get("/api/clips/{clip_id}/labels")
def clip_labels(request: Request, clip_id: ClipId) -> dict[str, object]:
    ctx = ctx_of(request)
    clip = _clip(ctx, clip_id)
    return {"clip_id": clip.id, "history": [e.to_dict() for e in ctx.store.history(clip.id)]}


@router.get("/api/stats")
def stats(request: Request) -> dict[str, object]:
    """Preview cache counters (generated / reused / failed / pending) and label counts."""
    ctx = ctx_of(request)
    return {
        "previews": vars(ctx.previews.stats),
        "clips": len(ctx.catalog.clips),
        "labelled": len(ctx.store.current()),
    }


@router.get("/export/labels.csv")
def export_csv(request: Request) -> Response:
    """``path,label`` (1 good / 0 poor) for ``echoquality prepare-data --labels``."""
    ctx = ctx_of(request)
    links = ctx.settings.workspace_dir / "links"
    try:
        text = labels_csv(ctx.catalog, ctx.store.current(), links, ctx.settings.show_identifiers)
    except ExportError as exc:
        raise ApiError(409, str(exc)) from None
    headers = {"Content-Disposition": 'attachment; filename="review_labels.csv"'}
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/export/labels.json")
def export_json(request: Request) -> Response:
    """Every decision with reviewer and time (history kept)."""
    ctx = ctx_of(request)
    body = json.dumps(labels_json(ctx.catalog, ctx.store.history()), indent=2)
    headers = {"Content-Disposition": 'attachment; filename="review_labels.json"'}
    return Response(body, media_type="application/json", headers=headers)
