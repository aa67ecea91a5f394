"""Request limits that must hold however a body is sent.

The ``Content-Length`` check in the app's guard cannot see a body sent with chunked transfer
encoding: such a body used to be read whole, so a 7 MB document slipped past the 5 MiB upload
limit and held the index writer for minutes. ``RequestLimits`` counts the bytes actually
received instead, and refuses a JSON API call sent with another content type (415) rather
than letting it fail later as a confusing validation error.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.http.errors import error_response

_BODY_METHODS = {"POST", "PUT", "PATCH"}
# Routes that take more than JSON (file uploads) check their content type themselves.
_OWN_CONTENT_TYPES = ("/v1/documents",)


def body_limit(settings: Settings, path: str) -> int:
    """Largest body accepted on ``path``, in bytes (uploads get more room)."""
    if path.startswith("/v1/documents"):
        return settings.max_upload_bytes
    return settings.max_body_bytes


class RequestLimits:
    """ASGI middleware: body size limits on the bytes received, JSON-only API routes."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, path: str) -> int:
        """Largest body accepted on ``path``, in bytes."""
        return body_limit(self.settings, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if (path.startswith("/v1/") and not path.startswith(_OWN_CONTENT_TYPES)
                and content_type and content_type != "application/json"
                and not content_type.endswith("+json")):
            await error_response(415, "unsupported_media_type",
                         f"send the request body as application/json, not {content_type}")(
                scope, receive, send)
            return
        if "content-length" in headers:
            await self.app(scope, receive, send)  # checked up front by the app's guard
            return
        # Chunked (or unframed) body: read it up to the limit before the app sees any of it.
        limit = self.limit_for(path)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await error_response(413, "body_too_large",
                             f"request body is over the {limit} byte limit")(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# Routes whose work is CPU-bound answering (the model, FAISS, the support checker).
ANSWER_ROUTES = ("/v1/ask", "/v1/search")


class AnswerConcurrency:
    """ASGI middleware: at most ``limit`` answering requests run at once, the rest queue.

    Every sync route runs in a worker thread, and 32 concurrent asks meant 32 threads fighting
    for 2 cores and the GIL: requests finished in random order (p99 several times p50) and the
    event loop itself got a 1/33 share, so even /healthz slowed down. Queued requests wait on
    an asyncio semaphore, which wakes them in arrival order and costs no thread.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.limit <= 0 or scope["type"] != "http" or scope.get("method") != "POST"
                or not str(scope.get("path", "")).startswith(ANSWER_ROUTES)):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # created in the server's event loop
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)
