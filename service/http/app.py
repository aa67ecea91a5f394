"""The FastAPI application: middleware, error handlers and the resource routers.

Routes live in ``service/http/routes/`` (one router per resource); the status of each domain
error in ``errors.py``; what routes are handed (service, settings, metrics) in ``deps.py``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from corpus.errors import GroundQAError
from service.config import Settings
from service.core import QAService
from service.http.contract import HeadAsGet, install_openapi
from service.http.deps import OPEN_PATHS
from service.http.docs import mount_api_docs
from service.http.errors import EXCEPTION_HANDLERS
from service.http.guard import Guard
from service.http.limits import AnswerSlots, RequestLimits, SlowReaders, answer_slot_limit
from service.http.metrics import Metrics
from service.http.routes import ask, chat, documents, ops, search, web
from service.http.startup import OneLineStartupFailure
from service.http.web import mount_static

#: In registration order, which is the order of the paths in the OpenAPI schema.
ROUTERS = (ops.router, ask.router, search.router, documents.router, chat.router, web.router)


def settle_heap() -> None:
    """Move everything loaded so far (models, libraries, the index) out of the collector's way.

    A full collection walks every tracked object, and it runs in whichever thread allocates
    when it is due, holding the GIL throughout: with the models loaded that is ~0.3 M objects
    and a second or more on a busy 2-core machine, during which even /healthz waits (seen as
    2-3 s liveness outliers under load, tests/reliability/test_load.py). Frozen objects are
    never walked again; they are still freed by reference counting when dropped (an index
    version replaced by a reload), only reference cycles among them would stay.
    """
    gc.collect()
    gc.freeze()


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
        if service is None:  # a serving process (an app handed a service is a test's)
            await run_in_threadpool(app.state.service.warm_up)
            settle_heap()
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

    # Added after the limits above, so it runs outside them: key and declared size first.
    app.add_middleware(Guard, settings=settings, metrics=metrics, routes=lambda: [
        *app.router.routes, *(route for router in ROUTERS for route in router.routes)])

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
