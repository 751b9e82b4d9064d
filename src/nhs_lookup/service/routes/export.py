"""``GET /export``: the mapping table as CSV, JSON or a FHIR R4 ConceptMap download."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from nhs_lookup.service.actions import export_document
from nhs_lookup.service.deps import Ctx

router = APIRouter(tags=["export"])


@router.get("/export")
def export(
    ctx: Ctx,
    format: Literal["csv", "json", "fhir"] = "csv",  # noqa: A002 - the public query parameter name
    scope: Literal["approved", "all"] = "approved",
    data_source: str | None = None,
) -> Response:
    """The mapping table: approved-only (approved + reviewed no-match) or all with status."""
    body, media, filename = export_document(ctx, format, scope, data_source)
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
