"""Batch jobs: ``POST /batch``, ``GET /jobs``, ``GET /jobs/{id}`` and ``GET /jobs/{id}/results``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from nhs_lookup.service.deps import Ctx, Offset, Writer
from nhs_lookup.service.exports import job_results_csv
from nhs_lookup.service.schemas import BatchIn, JobOut, JobResultsOut
from nhs_lookup.service.uploads import read_batch
from nhs_lookup.service.views import item_out, job_out

router = APIRouter(tags=["batch"])

BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": BatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".json, .csv or .tsv exam file",
                        },
                        "name": {"type": "string"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/batch", status_code=202, response_model=JobOut, dependencies=[Writer], openapi_extra=BATCH_BODY
)
async def batch(request: Request, ctx: Ctx) -> JobOut:
    """Start a batch job from a JSON body (``{"exams": [...]}`` or a bare list of exams) or an uploaded
    JSON/CSV/TSV file. Returns at once with the job id; poll ``/jobs/{id}``. Unreadable file rows are
    reported in ``row_errors`` and the rest processed."""
    queries, row_errors, name = await read_batch(request, ctx.settings)
    job = ctx.store.create_job(name, queries, row_errors, ctx.info)
    ctx.runner.submit(job.id)
    return job_out(job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[JobOut]:
    return [job_out(j) for j in ctx.store.list_jobs(limit)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, ctx: Ctx) -> JobOut:
    """Progress of a batch job."""
    return job_out(ctx.job_or_404(job_id))


@router.get("/jobs/{job_id}/results", response_model=JobResultsOut)
def job_results(
    job_id: str,
    ctx: Ctx,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the public query parameter name
) -> Any:
    """Results page by page (JSON), or the whole job as a CSV download (``?format=csv``)."""
    job = ctx.job_or_404(job_id)
    if format == "csv":
        return StreamingResponse(
            job_results_csv(ctx.store.iter_job_items(job_id)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="nhs_lookup_job_{job_id}.csv"'},
        )
    items = ctx.store.job_items(job_id, offset, limit)
    return JobResultsOut(
        job_id=job_id,
        status=job.status,
        total=job.total,
        offset=offset,
        limit=limit,
        items=[item_out(i) for i in items],
    )
