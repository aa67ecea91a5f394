"""The guard every HTTP request passes first: API key, declared body size, request metrics.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the rest of the app in a
separate task behind memory streams: a measurable cost on every request, and it buffers the
start of streamed responses. Here the app is called in place and ``send`` is wrapped only to
read the response status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.http.deps import has_valid_key, needs_key
from service.http.errors import error_response
from service.http.limits import body_limit
from service.http.metrics import Metrics, method_label, route_label


class Guard:
    """ASGI middleware: refuse a request without a valid key (401) or declaring a body over the
    limit (413) or an unreadable length (400); count every request by route template, method and
    status, and time it until its response is sent.

    ``routes`` is called on the first request (when every router is included) and lists the
    routes a request refused before routing is matched against.
    """

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics,
                 routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self._routes_source = routes
        self._routes: Sequence[BaseRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        refusal = self._refusal(scope)
        if refusal is not None:
            response, status = refusal
            try:
                await response(scope, receive, send)
            finally:
                self._count(scope, status, started)
            return

        status = 500  # what the client gets if the app raises before a response starts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._count(scope, status, started)

    def _refusal(self, scope: Scope) -> tuple[Any, int] | None:
        """The error response for a request refused before it reaches a route, if it is."""
        settings = self.settings
        path = scope["path"]
        headers = Headers(scope=scope)
        if needs_key(settings, path, scope["method"]) and \
                not has_valid_key(settings, headers.get("authorization", "")):
            return error_response(401, "unauthorized",
                                  "a valid API key is required: send "
                                  "'Authorization: Bearer <key>'",
                                  headers={"WWW-Authenticate": "Bearer"}), 401
        length = headers.get("content-length")
        if length is None:
            return None
        limit = body_limit(settings, path)
        try:
            too_big = int(length) > limit
        except ValueError:
            return error_response(400, "bad_request", "invalid Content-Length header"), 400
        if too_big:
            return error_response(413, "body_too_large",
                                  f"request body is {length} bytes; the limit is {limit}"), 413
        return None

    def _count(self, scope: Scope, status: int, started: float) -> None:
        """Count a request under bounded labels: route template, method, status."""
        if self._routes is None:
            self._routes = list(self._routes_source())
        label = route_label(scope, self._routes)
        self.metrics.requests.labels(label, method_label(scope["method"]), str(status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)
