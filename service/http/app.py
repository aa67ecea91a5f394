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
from starlette.routing import BaseRoute

from corpus.errors import GroundQAError
from service.config import Settings
from service.core import QAService
from service.http.contract import HeadAsGet, install_openapi
from service.http.deps import OPEN_PATHS, has_valid_key, needs_key
from service.http.docs import mount_api_docs
from service.http.errors import EXCEPTION_HANDLERS, error_response
from service.http.limits import (
    AnswerSlots,
    RequestLimits,
    SlowReaders,
    answer_slot_limit,
    body_limit,
)
from service.http.metrics import Metrics, method_label, route_label
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
        # /docs and /redoc come from service/http/docs.py, with assets served locally.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # Held by routes around the computation of an answer only (routes/ask.py, search, chat).
    app.state.answer_slots = AnswerSlots(answer_slot_limit(settings))
    app.add_middleware(OneLineStartupFailure)
    # Added before the guard below, so it runs inside it: auth first, then the body is read
    # whole (size limit, deadline) before any route or answer slot sees the request.
    app.add_middleware(RequestLimits, settings=settings)

    known_routes: list[BaseRoute] = []  # filled on the first request, once all are added

    def count(request: Request, status: int, started: float) -> None:
        """Count a request under bounded labels: route template, method, status."""
        if not known_routes:
            known_routes.extend([*app.router.routes,
                                 *(route for router in ROUTERS for route in router.routes)])
        label = route_label(request.scope, known_routes)
        metrics.requests.labels(label, method_label(request.method), str(status)).inc()
        metrics.latency.labels(label).observe(time.perf_counter() - started)

    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """API key, declared body size, then request metrics by route template."""
        started = time.perf_counter()
        route = request.url.path
        if needs_key(settings, route, request.method) and \
                not has_valid_key(settings, request.headers.get("authorization", "")):
            count(request, 401, started)
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
                count(request, 400, started)
                return error_response(400, "bad_request", "invalid Content-Length header")
            if too_big:
                count(request, 413, started)
                return error_response(413, "body_too_large",
                                      f"request body is {length} bytes; the limit is {limit}")
        response = await call_next(request)
        count(request, response.status_code, started)
        return response

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])

    # Outside the guard: a HEAD is checked (key, metrics) and served as the GET it mirrors.
    app.add_middleware(HeadAsGet)
    # Outermost: every response write, whichever layer makes it, is bounded in time.
    app.add_middleware(SlowReaders, timeout=settings.send_timeout_seconds)
    install_openapi(app, settings, OPEN_PATHS)

    for error_class, handler in EXCEPTION_HANDLERS:
        app.add_exception_handler(error_class, handler)
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)
    mount_api_docs(app)
    return app
