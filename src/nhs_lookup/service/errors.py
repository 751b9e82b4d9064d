"""Errors the API reports: always JSON ``{"error": "...", "detail"?: ...}``, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("nhs_lookup.service")


class ApiError(Exception):
    """An error reported to the client with a status code and a plain message."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.message}
    if exc.detail is not None:
        body["detail"] = exc.detail
    return JSONResponse(body, status_code=exc.status)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"field": loc, "message": msg})
    summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
    return JSONResponse({"error": f"invalid request: {summary}", "detail": details}, status_code=422)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        {"error": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal server error (details are in the server log)"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Clear JSON errors for API errors, validation and HTTP errors; a bare 500 for the unexpected."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
