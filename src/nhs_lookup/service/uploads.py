"""Reading a batch request: a JSON body (``{"exams": [...]}`` or a bare list) or an uploaded case file
(.json/.csv/.tsv in any encoding Excel writes), within the upload limits."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from nhs_lookup.cases import CaseFileError, iter_cases
from nhs_lookup.records import CaseError, ExamQuery
from nhs_lookup.service.errors import ApiError
from nhs_lookup.service.schemas import BatchIn
from nhs_lookup.service.settings import ServiceSettings

Queries = list[tuple[int, ExamQuery]]


def check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"upload too large: {int(length)} bytes (limit {limit} bytes)")


async def read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"upload too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(
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


async def read_json_batch(request: Request, settings: ServiceSettings) -> tuple[Queries, str | None]:
    """A JSON body: every exam valid, or a 422 naming each bad one (a script can fix and resend)."""
    body = await read_body(request, settings.max_upload_bytes)
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
    return queries, parsed.name


async def read_batch(
    request: Request, settings: ServiceSettings
) -> tuple[Queries, list[dict[str, Any]], str | None]:
    """(queries, unreadable file rows, job name) from a JSON body or a multipart upload."""
    check_length(request, settings.max_upload_bytes)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        queries, row_errors, name = await read_upload(request, settings)
    elif ctype.startswith("application/json"):
        (queries, name), row_errors = await read_json_batch(request, settings), []
    else:
        raise ApiError(415, "send application/json ({'exams': [...]}) or multipart/form-data with a 'file'")
    if len(queries) > settings.max_batch_items:
        raise ApiError(
            413, f"too many exams: {len(queries)} (this server accepts {settings.max_batch_items})"
        )
    return queries, row_errors, name
