"""``GET /catalogue/search``: free-text catalogue search for picking a target by hand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from nhs_lookup.service.deps import Ctx
from nhs_lookup.service.errors import ApiError
from nhs_lookup.service.schemas import CatalogueEntryOut
from nhs_lookup.service.views import catalogue_entry_out
from nhs_lookup.textfile import has_visible_text

router = APIRouter(tags=["review"])


@router.get("/catalogue/search", response_model=list[CatalogueEntryOut])
def catalogue_search(
    ctx: Ctx,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[CatalogueEntryOut]:
    """Free-text catalogue search, for picking a target by hand."""
    if not has_visible_text(q):
        raise ApiError(422, "q must not be blank")
    return [catalogue_entry_out(e) for e in ctx.engine.search_catalogue(q.strip(), limit)]
