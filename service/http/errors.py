"""Errors at the HTTP edge: domain error → status, and the one JSON error envelope.

The corpus/index/service layers raise ``GroundQAError`` subclasses that carry a stable
machine-readable ``code`` and know nothing of HTTP. ``STATUS_BY_ERROR`` is the one place that
gives each of them a status; the handlers below turn every error the app can meet (domain,
validation, routing, unexpected) into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from corpus.errors import (
    DocumentLoadError,
    DocumentNotFound,
    EmbeddingMismatch,
    EmptyQuestion,
    GroundQAError,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    InsufficientStorage,
    InvalidRequest,
    ModelNotFound,
    StoreUnavailable,
)
from service.schemas import ErrorResponse

logger = logging.getLogger(__name__)

#: HTTP status of each domain error; a subclass not listed takes its nearest listed base's.
STATUS_BY_ERROR: dict[type[GroundQAError], int] = {
    GroundQAError: 400,
    DocumentLoadError: 422,
    IndexNotFound: 503,
    IndexCorrupt: 503,
    ModelNotFound: 503,
    EmbeddingMismatch: 409,
    DocumentNotFound: 404,
    EmptyQuestion: 422,
    InvalidRequest: 422,
    IndexBusy: 409,
    InsufficientStorage: 507,
    StoreUnavailable: 503,
}
#: Seconds a client is told to wait before retrying a request the database could not serve.
RETRY_AFTER_SECONDS = 5

#: Codes of the HTTP errors Starlette raises itself (unknown path, wrong method, ...).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiError(Exception):
    """An error found by the HTTP layer itself (body too large, wrong content type, ...)."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def status_for(exc: GroundQAError) -> int:
    """The HTTP status a domain error maps to."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one JSON error shape: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response carrying the error envelope."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def in_band_error(exc: Exception) -> dict[str, Any]:
    """The envelope for an error met after a stream began (sent as an event, status 200)."""
    if isinstance(exc, GroundQAError):
        return error_body(exc.code, exc.message)
    return error_body("internal_error", "an unexpected error occurred")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error envelope for ``statuses``."""
    return {status: {"model": ErrorResponse} for status in statuses}


# -- exception handlers (registered by create_app) ---------------------------------------------
async def domain_error(_: Request, exc: Exception) -> JSONResponse:
    """A domain error: its status from ``STATUS_BY_ERROR``, its own code and message."""
    assert isinstance(exc, GroundQAError)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} \
        if isinstance(exc, StoreUnavailable) else None
    return error_response(status_for(exc), exc.code, exc.message, headers=headers)


async def http_layer_error(_: Request, exc: Exception) -> JSONResponse:
    """An ``ApiError`` raised by a route or helper of this package."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """A request body that failed validation: 400 for bad JSON, else 422 naming the field."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else \
        str(first.get("msg", "invalid request"))
    if first.get("type") == "missing" and not where:
        message = "the request body is missing"
    code = "invalid_request"
    if where == "question" or where.startswith("question"):
        code = "invalid_question"
    elif where.startswith("top_k"):
        code = "invalid_top_k"
    return error_response(422, code, message)


async def routing_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's HTTP exceptions (unknown path, wrong method, unparsable body)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's body parser (invalid UTF-8, JSON nested too deep): same code as ours.
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette's Allow names only the first matching route's methods; a path served
        # by several routes (GET and POST /v1/documents) must list them all (RFC 9110).
        methods = allowed_methods(request)
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"),
                          str(exc.detail), headers=headers or None)


def allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at the request's path.

    Asked through ``matches``: routes inside included routers are not listed flat. Mounts
    (the static files) answer any method and report their own 405s, so they are left out.
    """
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    methods = {method for method in _METHODS
               if any(r.matches({**request.scope, "method": method})[0] == Match.FULL
                      for r in routes)}
    if "GET" in methods:
        methods.add("HEAD")  # answered as GET (service/http/contract.py)
    return methods


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, answered with a bare 500."""
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


#: Exception class → handler, in the order create_app registers them.
EXCEPTION_HANDLERS = (
    (GroundQAError, domain_error),
    (ApiError, http_layer_error),
    (RequestValidationError, validation_error),
    (StarletteHTTPException, routing_error),
    (Exception, unexpected_error),
)
