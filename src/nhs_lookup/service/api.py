"""The FastAPI application: lookup, batch jobs, review workflow, exports and the web app.

``create_app(settings)`` wires the engine, the store and the job runner; nothing is global, so
tests build as many apps as they like (each against its own database).
"""

from __future__ import annotations

import hmac
import io
import logging
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nhs_lookup import __version__
from nhs_lookup.cases import CaseFileError, iter_cases
from nhs_lookup.records import RESULT_COLUMNS, CaseError, ExamQuery, flatten_result
from nhs_lookup.service import exports
from nhs_lookup.service.db import Decision, Job, JobItem, Mapping, QueueFilter, Store, utcnow
from nhs_lookup.service.jobs import JobRunner
from nhs_lookup.service.lookups import (
    EngineLike,
    answer_one,
    engine_info,
    proposal_flags,
    proposal_payload,
    review_info,
    target_of,
)
from nhs_lookup.service.pool import PooledEngine
from nhs_lookup.service.review import ACTION_STATUS, MappingKey, band_of
from nhs_lookup.service.schemas import (
    MAX_INT64,
    BatchIn,
    BulkApproveIn,
    BulkApproveOut,
    CatalogueEntryOut,
    ConsolidatedName,
    ConsolidatedOut,
    ConsolidatedRow,
    DecisionIn,
    DecisionOut,
    ExamIn,
    InconsistentName,
    JobItemOut,
    JobOut,
    JobResultsOut,
    LookupOut,
    MappingDetailOut,
    MappingOut,
    MappingPage,
    SummaryOut,
)
from nhs_lookup.service.security import SecurityMiddleware, host_policy
from nhs_lookup.service.settings import ServiceSettings
from nhs_lookup.textfile import SafeDictWriter, has_visible_text

log = logging.getLogger("nhs_lookup.service")

RESULT_CSV_COLUMNS = ["row", *RESULT_COLUMNS, "flags", "remembered", "mapping_id", "error"]


@dataclass
class ServiceContext:
    """Everything a request handler needs (one per app)."""

    settings: ServiceSettings
    store: Store
    engine: EngineLike
    runner: JobRunner
    info: dict[str, Any]


def load_engine(settings: ServiceSettings) -> EngineLike:
    from nhs_lookup.engine import LookupEngine  # heavy import, kept out of module import

    return LookupEngine.load(settings.engine_config, catalogue_path=settings.catalogue_path)


class ApiError(Exception):
    """An error reported to the client with a status code and a plain message."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def require_key(request: Request) -> None:
    """Write endpoints need ``X-API-Key`` when the server has a key (constant-time comparison)."""
    key = request.app.state.ctx.settings.api_key
    if not key:
        return
    given = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key (send it in the X-API-Key header)")


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
        raise ApiError(422, f"unknown status '{status}'")
    return QueueFilter(
        status or "needs_review", data_source or None, modality or None, band, flag or None, q or None
    )


Filter = Annotated[QueueFilter, Depends(queue_filter)]
# Bounded so that a 30-digit number is a 422, not an OverflowError in the database driver.
Offset = Annotated[int, Query(ge=0, le=MAX_INT64)]
MappingId = Annotated[int, PathParam(ge=0, le=MAX_INT64)]


def create_app(settings: ServiceSettings | None = None, *, engine: EngineLike | None = None) -> FastAPI:
    """Build the app. *engine* lets a caller share one loaded engine between apps (tests, benchmarks)."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine if engine is not None else load_engine(settings)
        pool = PooledEngine(eng, settings.lookup_workers) if settings.lookup_workers > 0 else None
        eng = pool or eng
        store = Store(settings.db_url, flag_singletons=settings.review.flag_singletons)
        runner = JobRunner(store, eng, settings.review, settings.job_chunk_size)
        ctx = ServiceContext(settings, store, eng, runner, engine_info(eng, settings.catalogue_path))
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
        app.state.ctx = ctx
        try:
            yield
        finally:
            runner.stop()
            store.close()
            if pool is not None:
                pool.close()

    app = FastAPI(
        title="NHS lookup service",
        version=__version__,
        description="Map local RIS exam names to the NHS imaging procedure catalogue, review the "
        "uncertain mappings and export an approved mapping table. Write endpoints need the "
        "`X-API-Key` header when the server was started with an API key.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    _install_docs(app)
    app.add_middleware(SecurityMiddleware, hosts=host_policy(settings.host, settings.allowed_hosts))

    # ------------------------------------------------------------------ basics
    @app.get("/health", tags=["service"])
    def health(ctx: Ctx) -> dict[str, Any]:
        """Liveness and what the service is running with."""
        return {
            "status": "ok",
            "version": __version__,
            "catalogue_rows": ctx.info["catalogue_rows"],
            "catalogue": ctx.info["catalogue_path"],
            "api_key_required": bool(settings.api_key),
            "jobs_idle": ctx.runner.idle(),
        }

    @app.post("/lookup", response_model=LookupOut, tags=["lookup"])
    def lookup(exam: ExamIn, ctx: Ctx) -> LookupOut:
        """Look up one exam. An input a reviewer already approved (or marked no-match) gets that answer
        at once, with who/when; targets rejected for this input are never proposed."""
        query = ExamQuery(exam.exam_name, exam.modality_code, exam.exam_code, exam.data_source)
        answer, mapping = answer_one(ctx.engine, ctx.store, settings.review, query)
        return LookupOut(
            result=answer.payload,
            remembered=answer.remembered,
            review=review_info(mapping, answer.remembered),
        )

    # -------------------------------------------------------------------- batch
    @app.post(
        "/batch",
        status_code=202,
        response_model=JobOut,
        tags=["batch"],
        dependencies=[Writer],
        openapi_extra={
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
                                    "description": ".json or .csv exam file",
                                },
                                "name": {"type": "string"},
                            },
                        }
                    },
                },
            }
        },
    )
    async def batch(request: Request, ctx: Ctx) -> JobOut:
        """Start a batch job from a JSON body (``{"exams": [...]}`` or a bare list of exams) or an uploaded
        JSON/CSV file.
        Returns at once with the job id; poll ``/jobs/{id}``. Unreadable file rows are reported in
        ``row_errors`` and the rest processed."""
        _check_length(request, settings.max_upload_bytes)
        ctype = request.headers.get("content-type", "")
        row_errors: list[dict[str, Any]] = []
        if ctype.startswith("multipart/form-data"):
            queries, row_errors, name = await _read_upload(request, settings)
        elif ctype.startswith("application/json"):
            body = await _read_body(request, settings.max_upload_bytes)
            try:
                if body.lstrip().startswith(b"["):  # a bare RIS export list is accepted as the exams
                    body = b'{"exams": ' + body + b"}"
                parsed = BatchIn.model_validate_json(body)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
            queries = [
                (i, ExamQuery(e.exam_name, e.modality_code, e.exam_code, e.data_source))
                for i, e in enumerate(parsed.exams, start=1)
            ]
            name = parsed.name
        else:
            raise ApiError(
                415, "send application/json ({'exams': [...]}) or multipart/form-data with a 'file'"
            )
        if len(queries) > settings.max_batch_items:
            raise ApiError(
                413, f"too many exams: {len(queries)} (this server accepts {settings.max_batch_items})"
            )
        job = ctx.store.create_job(name, queries, row_errors, ctx.info)
        ctx.runner.submit(job.id)
        return _job_out(job)

    @app.get("/jobs", response_model=list[JobOut], tags=["batch"])
    def list_jobs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[JobOut]:
        return [_job_out(j) for j in ctx.store.list_jobs(limit)]

    @app.get("/jobs/{job_id}", response_model=JobOut, tags=["batch"])
    def get_job(job_id: str, ctx: Ctx) -> JobOut:
        """Progress of a batch job."""
        return _job_out(_job_or_404(ctx, job_id))

    @app.get("/jobs/{job_id}/results", response_model=JobResultsOut, tags=["batch"])
    def job_results(
        job_id: str,
        ctx: Ctx,
        offset: Offset = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Literal["json", "csv"] = "json",  # noqa: A002 - the public query parameter name
    ) -> Any:
        """Results page by page (JSON), or the whole job as a CSV download (``?format=csv``)."""
        job = _job_or_404(ctx, job_id)
        if format == "csv":
            return StreamingResponse(
                _results_csv(ctx.store, job_id),
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
            items=[_item_out(i) for i in items],
        )

    # -------------------------------------------------------------- catalogue
    @app.get("/catalogue/search", response_model=list[CatalogueEntryOut], tags=["review"])
    def catalogue_search(
        ctx: Ctx,
        q: Annotated[str, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[CatalogueEntryOut]:
        """Free-text catalogue search, for picking a target by hand."""
        if not has_visible_text(q):
            raise ApiError(422, "q must not be blank")
        entries = ctx.engine.search_catalogue(q.strip(), limit)
        return [
            CatalogueEntryOut(
                name=e.name,
                snomed_id=str(e.snomed_id) if e.snomed_id else None,
                fsn=e.fsn,
                nicip_code=e.nicip_code,
                laterality=e.laterality_fsn,
                modality=e.components.modality,
                is_interventional=e.is_interventional,
            )
            for e in entries
        ]

    # ----------------------------------------------------------------- review

    @app.get("/mappings", response_model=MappingPage, tags=["review"])
    def list_mappings(
        ctx: Ctx,
        f: Filter,
        offset: Offset = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> MappingPage:
        """The review queue: flagged first, then lowest confidence."""
        rows, total = ctx.store.queue(f, offset, limit)
        return MappingPage(total=total, offset=offset, limit=limit, items=[mapping_out(m) for m in rows])

    @app.get("/mappings/{mapping_id}", response_model=MappingDetailOut, tags=["review"])
    def get_mapping(mapping_id: MappingId, ctx: Ctx, f: Filter) -> MappingDetailOut:
        """One mapping with its proposal, candidates and decision history; ``next_id`` follows the queue."""
        m = _mapping_or_404(ctx, mapping_id)
        return mapping_detail(ctx, m, f)

    @app.post(
        "/mappings/{mapping_id}/decision",
        response_model=MappingDetailOut,
        tags=["review"],
        dependencies=[Writer],
    )
    def decide(mapping_id: MappingId, body: DecisionIn, ctx: Ctx) -> MappingDetailOut:
        """Approve, choose another target, reject, mark no-match, flag, defer, or reset one mapping."""
        m = _mapping_or_404(ctx, mapping_id)
        apply_decision(ctx, m, body)
        m = _mapping_or_404(ctx, mapping_id)
        return mapping_detail(ctx, m, QueueFilter())

    @app.post("/mappings/bulk-approve", response_model=BulkApproveOut, tags=["review"], dependencies=[Writer])
    def bulk_approve(body: BulkApproveIn, ctx: Ctx) -> BulkApproveOut:
        """Approve every undecided proposal at or above a confidence threshold (optionally one source).
        Human decisions are never overridden."""
        n = ctx.store.bulk_approve(
            body.threshold, body.reviewer, body.data_source, body.comment, body.include_flagged
        )
        return BulkApproveOut(approved=n, threshold=body.threshold, data_source=body.data_source)

    @app.get("/summary", response_model=list[SummaryOut], tags=["review"])
    def summary(ctx: Ctx) -> list[SummaryOut]:
        """Counts per data source: approved / needs review / no match."""
        return [SummaryOut(**vars(s)) for s in exports.summarize(ctx.store.status_counts())]

    @app.get("/consolidated", response_model=ConsolidatedOut, tags=["review"])
    def consolidated(ctx: Ctx, data_source: str | None = None) -> ConsolidatedOut:
        """Catalogue rows with every local name mapped to them, and local names mapped inconsistently."""
        return build_consolidated(ctx.store.all_mappings(data_source))

    @app.get("/export", tags=["export"])
    def export(
        ctx: Ctx,
        format: Literal["csv", "json", "fhir"] = "csv",  # noqa: A002
        scope: Literal["approved", "all"] = "approved",
        data_source: str | None = None,
    ) -> Response:
        """The mapping table: approved-only (approved + reviewed no-match) or all with status."""
        rows = [export_row(m) for m in ctx.store.all_mappings(data_source, approved_only=scope == "approved")]
        if scope == "approved":
            rows = [r for r in rows if r.status in ("approved", "no_match")]
        now = utcnow()
        stem = f"nhs_lookup_mappings_{scope}"
        if format == "csv":
            body, media, ext = exports.to_csv(rows), "text/csv; charset=utf-8", "csv"
        elif format == "json":
            body, media, ext = (
                exports.to_json(rows, scope=scope, generated_at=now, info=ctx.info),
                "application/json",
                "json",
            )
        else:
            import json

            body = json.dumps(
                exports.to_fhir_concept_map(rows, scope=scope, generated_at=now), indent=2, ensure_ascii=False
            )
            media, ext = "application/fhir+json", "conceptmap.json"
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{stem}.{ext}"'}
        )

    from nhs_lookup.service.web import register_web

    register_web(app, settings)
    return app


# ------------------------------------------------------------------ helpers
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


def _install_error_handlers(app: FastAPI) -> None:
    """Clear JSON errors; never a stack trace to the client."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.message}
        if exc.detail is not None:
            body["detail"] = exc.detail
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            details.append({"field": loc, "message": msg})
        summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
        return JSONResponse({"error": f"invalid request: {summary}", "detail": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal server error (details are in the server log)"}, status_code=500
        )


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"upload too large: {int(length)} bytes (limit {limit} bytes)")


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"upload too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_upload(
    request: Request, settings: ServiceSettings
) -> tuple[list[tuple[int, ExamQuery]], list[dict[str, Any]], str | None]:
    """Save the uploaded file to a temporary path and read it with :func:`iter_cases`."""
    from starlette.datastructures import UploadFile

    form = await request.form()
    upload = form.get("file")
    name = form.get("name")
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "multipart upload needs a 'file' field with a .json or .csv file")
    filename = Path(upload.filename or "upload").name
    suffix = Path(filename).suffix.lower()
    if suffix not in {".json", ".csv", ".tsv"}:
        raise ApiError(
            415,
            f"'{filename}': unsupported file type '{suffix or 'none'}' (upload a .json, .csv or .tsv file)",
        )
    with tempfile.TemporaryDirectory(prefix="nhs_lookup_upload_") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        size = 0
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise ApiError(413, f"'{filename}' is too large (limit {settings.max_upload_mb:g} MB)")
                out.write(chunk)
        if size == 0:
            raise ApiError(400, f"'{filename}' is empty")
        errors: list[CaseError] = []
        try:
            cases = list(iter_cases(path, errors))
        except CaseFileError as exc:
            raise ApiError(400, str(exc).replace(str(path), filename)) from None
    row_errors = [{"row": e.row, "message": e.message} for e in errors]
    if not cases:
        raise ApiError(400, f"'{filename}' has no readable exams", detail=row_errors[:100])
    queries = [(i, c.query) for i, c in enumerate(cases, start=1)]
    label = str(name).strip() if isinstance(name, str) and name.strip() else filename
    return queries, row_errors, label[:255]


def _job_or_404(ctx: ServiceContext, job_id: str) -> Job:
    job = ctx.store.get_job(job_id)
    if job is None:
        raise ApiError(404, f"no job '{job_id[:64]}'")
    return job


def _mapping_or_404(ctx: ServiceContext, mapping_id: int) -> Mapping:
    m = ctx.store.get_mapping(mapping_id)
    if m is None:
        raise ApiError(404, f"no mapping {mapping_id}")
    return m


def _job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        name=job.name,
        status=job.status,  # type: ignore[arg-type]
        total=job.total,
        processed=job.processed,
        failed=job.failed,
        progress=round(job.processed / job.total, 4) if job.total else 1.0,
        row_errors=job.row_errors or [],
        message=job.message,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        resumed_count=job.resumed_count or 0,
        engine=job.engine_info or {},
        links={
            "self": f"/jobs/{job.id}",
            "results": f"/jobs/{job.id}/results",
            "csv": f"/jobs/{job.id}/results?format=csv",
        },
    )


def _item_out(item: JobItem) -> JobItemOut:
    return JobItemOut(
        row=item.position,
        data_source=item.data_source,
        modality_code=item.modality_code,
        exam_code=item.exam_code,
        exam_name=item.exam_name,
        done=item.done,
        remembered=item.remembered,
        mapping_id=item.mapping_id,
        error=item.error,
        result=item.result,
    )


def _results_csv(store: Store, job_id: str) -> Iterator[str]:
    buf = io.StringIO()
    writer = SafeDictWriter(buf, fieldnames=RESULT_CSV_COLUMNS)
    writer.writeheader()
    for item in store.iter_job_items(job_id):
        r = item.result or {}
        flat = flatten_result(r)
        # The job item holds the input as submitted (a remembered answer may lack it).
        flat.update(
            data_source=item.data_source or "",
            modality_code=item.modality_code or "",
            exam_code=item.exam_code or "",
            exam_name=item.exam_name,
        )
        writer.writerow(
            {
                "row": item.position,
                **flat,
                "flags": "|".join(r.get("flags") or []),
                "remembered": item.remembered,
                "mapping_id": item.mapping_id or "",
                "error": item.error or ("" if item.done else "not processed yet"),
            }
        )
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def mapping_out(m: Mapping) -> MappingOut:
    return MappingOut(
        id=m.id,
        data_source=m.data_source,
        exam_code=m.exam_code,
        exam_name=m.exam_name,
        modality_code=m.modality_code,
        status=m.status,
        status_by=m.status_by,
        target_name=m.target_name,
        target_snomed_id=m.target_snomed_id,
        target_fsn=m.target_fsn,
        target_nicip=m.target_nicip,
        target_laterality=m.target_laterality,
        confidence=m.confidence,
        band=band_of(m.confidence),
        flags=list(m.flags or []),
        rejected_targets=list(m.rejected_targets or []),
        equivalence=m.equivalence,
        reviewer=m.reviewer,
        decided_at=m.decided_at,
        comment=m.comment,
        updated_at=m.updated_at,
    )


def _decision_out(d: Decision) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        action=d.action,
        status=d.status,
        target_name=d.target_name,
        previous_target=d.previous_target,
        equivalence=d.equivalence,
        confidence=d.confidence,
        reviewer=d.reviewer,
        comment=d.comment,
        created_at=d.created_at,
    )


def mapping_detail(ctx: ServiceContext, m: Mapping, f: QueueFilter) -> MappingDetailOut:
    ids = ctx.store.queue_ids(f)
    next_id = None
    if m.id in ids:
        i = ids.index(m.id)
        next_id = ids[i + 1] if i + 1 < len(ids) else None
    elif ids:
        next_id = ids[0]
    return MappingDetailOut(
        **mapping_out(m).model_dump(),
        proposal=m.proposal,
        history=[_decision_out(d) for d in ctx.store.decisions(m.id)],
        next_id=next_id,
    )


def apply_decision(ctx: ServiceContext, m: Mapping, body: DecisionIn) -> None:
    """Validate and store one reviewer action (see :class:`DecisionIn`)."""
    action = body.action
    status = ACTION_STATUS[action]
    target = None
    keep_target = True
    reproposal = None
    if action == "approve" and not m.target_name:
        raise ApiError(409, "nothing to approve: the engine proposed no target; choose one or mark no_match")
    if action == "choose":
        if not body.target_name:
            raise ApiError(422, "action 'choose' needs target_name (a catalogue name)")
        entry = ctx.engine.catalogue.by_name(body.target_name)
        if entry is None:
            raise ApiError(422, f"'{body.target_name}' is not a catalogue name")
        target, keep_target = target_of(entry), False
    if action == "reject":
        if not m.target_name:
            raise ApiError(409, "nothing to reject: the mapping has no target")
        exclude = tuple(dict.fromkeys([*(m.rejected_targets or []), m.target_name]))
        query = ExamQuery(m.exam_name, m.modality_code, m.exam_code, m.data_source)
        result = ctx.engine.lookup(query, exclude=exclude)
        flags = proposal_flags(result, ctx.settings.review)
        reproposal = (
            target_of(result.best.entry) if result.best else None,
            float(result.confidence),
            flags,
            proposal_payload(result, flags),
        )
    ctx.store.decide(
        m.id,
        action=action,
        status=status,
        reviewer=body.reviewer,
        comment=body.comment,
        target=target,
        keep_target=keep_target,
        equivalence=body.equivalence,
        reproposal=reproposal,
    )


def export_row(m: Mapping) -> exports.ExportRow:
    return exports.ExportRow(
        data_source=m.data_source,
        exam_code=m.exam_code,
        exam_name=m.exam_name,
        modality_code=m.modality_code,
        status=m.status,
        target_name=m.target_name if m.status != "no_match" else None,
        nicip_code=m.target_nicip if m.status != "no_match" else None,
        snomed_id=m.target_snomed_id if m.status != "no_match" else None,
        snomed_fsn=m.target_fsn if m.status != "no_match" else None,
        laterality_id=m.target_laterality_id if m.status != "no_match" else None,
        laterality=m.target_laterality if m.status != "no_match" else None,
        equivalence=m.equivalence,
        confidence=m.confidence,
        flags=tuple(m.flags or ()),
        reviewer=m.reviewer,
        decided_at=m.decided_at,
        comment=m.comment,
    )


def build_consolidated(mappings: list[Mapping]) -> ConsolidatedOut:
    """Group local names by catalogue row; list names that different sources map differently."""
    groups: dict[str, list[Mapping]] = defaultdict(list)
    by_name: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    shown: dict[str, str] = {}
    for m in mappings:
        if m.target_name is None or m.status == "no_match":
            continue
        groups[m.target_name].append(m)
        key = MappingKey.of(None, None, m.exam_name).exam_name
        shown.setdefault(key, m.exam_name)
        by_name[key][m.target_name].add(m.data_source or "(none)")
    rows = [
        ConsolidatedRow(
            target_name=target,
            snomed_id=ms[0].target_snomed_id,
            nicip_code=ms[0].target_nicip,
            count=len(ms),
            sources=sorted({m.data_source or "(none)" for m in ms}),
            names=[
                ConsolidatedName(
                    mapping_id=m.id,
                    data_source=m.data_source,
                    exam_code=m.exam_code,
                    exam_name=m.exam_name,
                    status=m.status,
                    confidence=m.confidence,
                )
                for m in sorted(ms, key=lambda m: (m.data_source or "", m.exam_name))
            ],
        )
        for target, ms in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    inconsistent = [
        InconsistentName(exam_name=shown[name], targets={t: sorted(s) for t, s in sorted(targets.items())})
        for name, targets in sorted(by_name.items())
        if len(targets) > 1
    ]
    return ConsolidatedOut(rows=rows, inconsistent=inconsistent)
