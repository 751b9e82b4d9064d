"""The review workflow: the queue, one mapping, decisions, bulk approval, summary and consolidated view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from nhs_lookup.service import exports
from nhs_lookup.service.actions import apply_decision, build_consolidated, mapping_detail
from nhs_lookup.service.db import QueueFilter
from nhs_lookup.service.deps import Ctx, Filter, MappingId, Offset, Writer
from nhs_lookup.service.schemas import (
    BulkApproveIn,
    BulkApproveOut,
    ConsolidatedOut,
    DecisionIn,
    MappingDetailOut,
    MappingPage,
    SummaryOut,
)
from nhs_lookup.service.views import mapping_out

router = APIRouter(tags=["review"])


@router.get("/mappings", response_model=MappingPage)
def list_mappings(
    ctx: Ctx, f: Filter, offset: Offset = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> MappingPage:
    """The review queue: flagged first, then lowest confidence."""
    rows, total = ctx.store.queue(f, offset, limit)
    return MappingPage(total=total, offset=offset, limit=limit, items=[mapping_out(m) for m in rows])


@router.get("/mappings/{mapping_id}", response_model=MappingDetailOut)
def get_mapping(mapping_id: MappingId, ctx: Ctx, f: Filter) -> MappingDetailOut:
    """One mapping with its proposal, candidates and decision history; ``next_id`` follows the queue."""
    return mapping_detail(ctx, ctx.mapping_or_404(mapping_id), f)


@router.post("/mappings/{mapping_id}/decision", response_model=MappingDetailOut, dependencies=[Writer])
def decide(mapping_id: MappingId, body: DecisionIn, ctx: Ctx) -> MappingDetailOut:
    """Approve, choose another target, reject, mark no-match, flag, defer, or reset one mapping."""
    apply_decision(ctx, ctx.mapping_or_404(mapping_id), body)
    return mapping_detail(ctx, ctx.mapping_or_404(mapping_id), QueueFilter())


@router.post("/mappings/bulk-approve", response_model=BulkApproveOut, dependencies=[Writer])
def bulk_approve(body: BulkApproveIn, ctx: Ctx) -> BulkApproveOut:
    """Approve every undecided proposal at or above a confidence threshold (optionally one source).
    Human decisions are never overridden."""
    n = ctx.store.bulk_approve(
        body.threshold, body.reviewer, body.data_source, body.comment, body.include_flagged, body.dry_run
    )
    return BulkApproveOut(
        approved=n, threshold=body.threshold, data_source=body.data_source, dry_run=body.dry_run
    )


@router.get("/summary", response_model=list[SummaryOut])
def summary(ctx: Ctx) -> list[SummaryOut]:
    """Counts per data source: approved / needs review / no match."""
    return [SummaryOut(**vars(s)) for s in exports.summarize(ctx.store.status_counts())]


@router.get("/consolidated", response_model=ConsolidatedOut)
def consolidated(ctx: Ctx, data_source: str | None = None) -> ConsolidatedOut:
    """Catalogue rows with every local name mapped to them, and local names mapped inconsistently."""
    return build_consolidated(ctx.store.all_mappings(data_source))
