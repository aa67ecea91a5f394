"""The FastAPI application: middleware, error handlers and the resource routers.

Routes live in ``service/http/routes/`` (one router per resource); the status of each domain
error in ``errors.py``; what routes are handed (service, settings, metrics) in ``deps.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from corpus.errors import GroundQAError
from service.config import Settings
from service.core import QAService
from service.http.deps import has_valid_key, needs_key
from service.http.errors import EXCEPTION_HANDLERS, error_response
from service.http.limits import AnswerConcurrency, RequestLimits, body_limit
from service.http.metrics import Metrics
from service.http.routes import ask, chat, documents, ops, search, web
from service.http.startup import OneLineStartupFailure
from service.http.web import mount_static

#: In registration order, which is the order of the paths in the OpenAPI schema.
ROUTERS = (ops.router, ask.router, search.router, documents.router, chat.router, web.router)


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

    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """API key, declared body size, then request metrics by route template."""
        started = time.perf_counter()
        route = request.url.path
        if needs_key(settings, route, request.method) and \
                not has_valid_key(settings, request.headers.get("authorization", "")):
            metrics.requests.labels(route, request.method, "401").inc()
            return error_response(401, "unauthorized",
                                  "a valid API key is required: send "
                                  "'Authorization: Bearer <key>'",
                                  headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        limit = body_limit(settings, route)
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

    for error_class, handler in EXCEPTION_HANDLERS:
        app.add_exception_handler(error_class, handler)
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)
    return app
