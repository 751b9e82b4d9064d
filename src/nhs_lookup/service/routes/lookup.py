"""``GET /health`` and ``POST /lookup``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from nhs_lookup import __version__
from nhs_lookup.records import ExamQuery
from nhs_lookup.service.deps import Ctx
from nhs_lookup.service.lookups import review_info
from nhs_lookup.service.schemas import ExamIn, LookupOut

router = APIRouter()


@router.get("/health", tags=["service"])
def health(ctx: Ctx) -> dict[str, Any]:
    """Liveness and what the service is running with."""
    return {
        "status": "ok",
        "version": __version__,
        "catalogue_rows": ctx.info["catalogue_rows"],
        "catalogue": ctx.info["catalogue_path"],
        "api_key_required": bool(ctx.settings.api_key),
        "jobs_idle": ctx.runner.idle(),
    }


@router.post("/lookup", response_model=LookupOut, tags=["lookup"])
async def lookup(exam: ExamIn, ctx: Ctx) -> Response:
    """Look up one exam. An input a reviewer already approved (or marked no-match) gets that answer
    at once, with who/when; targets rejected for this input are never proposed."""
    query = ExamQuery(exam.exam_name, exam.modality_code, exam.exam_code, exam.data_source)
    # Answered together with the other requests in flight (one database query, one engine call).
    answer, mapping = await asyncio.wrap_future(ctx.answers.submit(query))
    body = {
        "result": answer.payload,
        "remembered": answer.remembered,
        "review": review_info(mapping, answer.remembered),
    }
    # The hot path: plain JSON of plain data, without re-validating the engine's own output (LookupOut
    # still documents the shape at /docs).
    return Response(json.dumps(body, ensure_ascii=False, default=_plain), media_type="application/json")


def _plain(value: Any) -> Any:
    """numpy scalars and other stragglers in a payload -> plain JSON values."""
    return value.item() if hasattr(value, "item") else str(value)
