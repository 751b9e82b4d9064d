"""Shared request dependencies: the per-app context, the API-key check, queue filters and bounded ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam

from nhs_lookup.records import ExamQuery
from nhs_lookup.service.batching import Batcher
from nhs_lookup.service.db import Job, Mapping, QueueFilter, Store
from nhs_lookup.service.errors import ApiError
from nhs_lookup.service.jobs import JobRunner
from nhs_lookup.service.lookups import Answer, EngineLike
from nhs_lookup.service.review import ACTION_STATUS
from nhs_lookup.service.schemas import MAX_INT64
from nhs_lookup.service.settings import ServiceSettings
from radqc_common.security import API_KEY_MESSAGE, api_key_ok


@dataclass
class ServiceContext:
    """Everything a request handler needs (one per app, on ``app.state.ctx``)."""

    settings: ServiceSettings
    store: Store
    engine: EngineLike
    runner: JobRunner
    info: dict[str, Any]
    answers: Batcher[ExamQuery, tuple[Answer, Mapping | None]]  # /lookup, micro-batched

    def job_or_404(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise ApiError(404, f"no job '{job_id[:64]}'")
        return job

    def mapping_or_404(self, mapping_id: int) -> Mapping:
        m = self.store.get_mapping(mapping_id)
        if m is None:
            raise ApiError(404, f"no mapping {mapping_id}")
        return m


async def get_ctx(request: Request) -> ServiceContext:
    """The app's context (async: FastAPI would run a plain function in its thread pool)."""
    return request.app.state.ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def require_key(request: Request) -> None:
    """Writes need ``X-API-Key`` when the server has a key."""
    if not api_key_ok(request):
        raise ApiError(401, API_KEY_MESSAGE)


Writer = Depends(require_key)


def queue_filter(
    status: Annotated[
        str | None, Query(description="needs_review (default), all, or one status")
    ] = "needs_review",
    data_source: str | None = None,
    modality: Annotated[str | None, Query(description="RIS modality code")] = None,
    band: Annotated[Literal["high", "review", "manual", "low"] | None, Query()] = None,
    flag: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> QueueFilter:
    if status and status not in {"needs_review", "all", *ACTION_STATUS.values()}:
        raise ApiError(422, f"unknown status '{status[:64]}'")
    return QueueFilter(
        status or "needs_review", data_source or None, modality or None, band, flag or None, q or None
    )


Filter = Annotated[QueueFilter, Depends(queue_filter)]
# Bounded so that a 30-digit number is a 422, not an OverflowError in the database driver.
Offset = Annotated[int, Query(ge=0, le=MAX_INT64)]
MappingId = Annotated[int, PathParam(ge=0, le=MAX_INT64)]
