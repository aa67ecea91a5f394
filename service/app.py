"""The FastAPI application: thin routes over ``QAService``, errors translated once here."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from corpus.errors import GroundQAError, InvalidRequest
from service.chat import ask_event_stream
from service.chat import router as chat_router
from service.config import Settings
from service.core import QAService
from service.limits import AnswerConcurrency, RequestLimits
from service.schemas import (
    AskRequest,
    AskResponse,
    DocumentChange,
    DocumentIn,
    DocumentList,
    DocumentOut,
    ErrorResponse,
    SearchRequest,
    SearchResponse,
)
from service.startup import OneLineStartupFailure
from service.web import OPEN_PREFIXES, install_web

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
           400: {"model": ErrorResponse}, 401: {"model": ErrorResponse},
           404: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
           415: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
           503: {"model": ErrorResponse}}
_OPEN_PATHS = {"/healthz", "/"}  # "/" is the chat page: no data, its API calls need the key


def get_service(request: Request) -> QAService:
    """The QAService built in the lifespan."""
    return request.app.state.service  # type: ignore[no-any-return]


Service = Annotated[QAService, Depends(get_service)]


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The one JSON error shape: ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


class Metrics:
    """Prometheus counters and histograms for one app instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("groundqa_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("groundqa_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.stage = Histogram("groundqa_ask_stage_seconds", "Time per answering stage",
                               ["stage"], registry=self.registry,
                               buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, 1))
        self.abstentions = Counter("groundqa_abstentions_total", "Questions not answered",
                                   ["reason"], registry=self.registry)
        self.answers = Counter("groundqa_answers_total", "Questions answered",
                               registry=self.registry)


def create_app(settings: Settings | None = None, service: QAService | None = None) -> FastAPI:
    """Build the app; the model and index load once, in the lifespan (or are passed in)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            app.state.service = service or await run_in_threadpool(QAService.from_settings,
                                                                   settings)
        except GroundQAError as exc:
            # A missing/foreign/damaged index: one line (OneLineStartupFailure), no traceback.
            app.state.startup_error = exc.message
            raise
        yield

    app = FastAPI(
        title="groundqa",
        version="0.1.0",
        summary="Answers from news articles, every sentence backed by a checkable citation.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.add_middleware(OneLineStartupFailure)
    # Added before the guard below, so it runs inside it: auth first, then body limits.
    # Not with an LLM writer: then an answer mostly waits on the network, not on the CPU.
    app.add_middleware(AnswerConcurrency, limit=0 if settings.llm_base_url
                       else settings.max_concurrent_answers)
    app.add_middleware(RequestLimits, settings=settings)

    # -- middleware ---------------------------------------------------------------------------
    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = request.url.path
        if settings.api_keys and route not in _OPEN_PATHS and request.method != "OPTIONS" \
                and not route.startswith(OPEN_PREFIXES):
            supplied = request.headers.get("authorization", "")
            token = supplied[7:] if supplied[:7].lower() == "bearer " else ""
            if not any(hmac.compare_digest(token.encode(), key.encode())
                       for key in settings.api_keys):
                metrics.requests.labels(route, request.method, "401").inc()
                return error_response(401, "unauthorized",
                                      "a valid API key is required: send "
                                      "'Authorization: Bearer <key>'",
                                      headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        limit = settings.max_upload_bytes if route.startswith("/v1/documents") \
            else settings.max_body_bytes
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                return error_response(400, "bad_request", "invalid Content-Length header")
            if too_big:
                metrics.requests.labels(route, request.method, "413").inc()
                return error_response(413, "body_too_large",
                                      f"request body is {length} bytes; the limit is {limit}")
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        template = request.scope.get("route")
        label = getattr(template, "path", "other")
        metrics.requests.labels(label, request.method, str(response.status_code)).inc()
        metrics.latency.labels(label).observe(elapsed)
        return response

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])

    # -- errors -------------------------------------------------------------------------------
    @app.exception_handler(GroundQAError)
    async def groundqa_error(_: Request, exc: GroundQAError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's body parser (invalid UTF-8, JSON nested too deep): same code as ours.
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names only the first matching route's methods; a path served
            # by several routes (GET and POST /v1/documents) must list them all (RFC 9110).
            path = request.scope.get("path", "")
            methods = {m for r in request.app.router.routes
                       if getattr(r, "path_regex", None) is not None and r.path_regex.match(path)
                       for m in (getattr(r, "methods", None) or ())}
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "an unexpected error occurred")

    # -- routes -------------------------------------------------------------------------------
    # async: liveness must not wait for a threadpool thread that /v1/ask work may be holding.
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"model": ErrorResponse}})
    def readyz(request: Request) -> Response:
        """Readiness: an index version is loaded."""
        svc: QAService | None = getattr(request.app.state, "service", None)
        if svc is None or not svc.ready:
            return error_response(503, "not_ready", "no index is loaded yet")
        live = svc.live()
        assert live.snapshot is not None
        return JSONResponse({"status": "ready", "index_version": live.snapshot.version,
                             "documents": live.snapshot.document_count,
                             "chunks": live.snapshot.chunk_count})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus metrics: requests and latency by route, stage latency, abstentions."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # With "stream": true the 200 is Server-Sent Events; documented (the fuzzer found it wasn't).
    @app.post("/v1/ask", response_model=AskResponse, tags=["qa"], responses={
        **_ERRORS, 200: {"content": {"text/event-stream": {}}}})
    def ask(body: AskRequest, svc: Service, response: Response,
            request: Request) -> AskResponse | Response:
        """Answer a question from the articles with verifiable citations, or abstain."""
        if body.stream:
            return ask_event_stream(svc, body, request)
        result = svc.ask(body)
        timings = result.timings_ms
        for stage in ("retrieve", "select", "compose", "verify"):
            metrics.stage.labels(stage).observe(getattr(timings, stage) / 1000.0)
        if result.answerable:
            metrics.answers.inc()
        else:
            metrics.abstentions.labels(result.abstain_reason or "unknown").inc()
        response.headers["Server-Timing"] = ", ".join(
            f"{stage};dur={getattr(timings, stage):.2f}"
            for stage in ("retrieve", "select", "compose", "verify", "total"))
        return result

    @app.post("/v1/search", response_model=SearchResponse, responses=_ERRORS, tags=["qa"])
    def search(body: SearchRequest, svc: Service) -> SearchResponse:
        """Ranked passages (dense, lexical and fused scores) for a query."""
        return svc.search(body)

    @app.get("/v1/documents", response_model=DocumentList, responses=_ERRORS,
             tags=["documents"])
    def list_documents(svc: Service) -> DocumentList:
        """List indexed documents (metadata only)."""
        return svc.list_documents()

    @app.get("/v1/documents/{doc_id}", response_model=DocumentOut, responses=_ERRORS,
             tags=["documents"])
    def get_document(doc_id: str, svc: Service) -> DocumentOut:
        """A document's metadata and the cleaned text that citation offsets index into."""
        return svc.get_document(doc_id)

    @app.post("/v1/documents", response_model=DocumentChange, responses=_ERRORS,
              tags=["documents"], openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": DocumentIn.model_json_schema()},
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"],
                      "properties": {"file": {"type": "string", "format": "binary"}}}}},
                  "required": True}})
    async def add_document(request: Request, svc: Service) -> DocumentChange | JSONResponse:
        """Add or replace a document: JSON (text, markdown or HTML) or a file upload."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                payload = json.loads(await request.body())
            # RecursionError: JSON nested thousands deep (a 500 before).
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                return error_response(400, "malformed_json", "the request body is not valid JSON")
            try:
                document = DocumentIn.model_validate(payload)
            except ValueError as exc:
                errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [])()
                first = errors[0] if errors else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                raise InvalidRequest(f"{where}: {first.get('msg', exc)}" if where
                                     else str(exc)) from None
            return await run_in_threadpool(svc.add_document, document)
        if content_type == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidRequest("multipart upload needs a 'file' field")
            raw = await upload.read(settings.max_upload_bytes + 1)
            if len(raw) > settings.max_upload_bytes:
                return error_response(413, "body_too_large",
                                      f"upload is over the {settings.max_upload_bytes} byte limit")
            return await run_in_threadpool(svc.add_document, None, raw=raw,
                                           filename=upload.filename)
        return error_response(415, "unsupported_media_type",
                              "send application/json or multipart/form-data")

    @app.delete("/v1/documents/{doc_id}", response_model=DocumentChange, responses=_ERRORS,
                tags=["documents"])
    def delete_document(doc_id: str, svc: Service) -> DocumentChange:
        """Delete a document: its vectors, BM25 entries and rows, as a new index version."""
        return svc.delete_document(doc_id)

    app.include_router(chat_router)
    install_web(app, settings)
    return app
