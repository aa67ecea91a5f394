"""Request limits that must hold however a body is sent, and however slowly.

The ``Content-Length`` check in the app's guard cannot see a body sent with chunked transfer
encoding: such a body used to be read whole, so a 7 MB document slipped past the 5 MiB upload
limit and held the index writer for minutes. ``RequestLimits`` counts the bytes actually
received instead, and refuses a JSON API call sent with another content type (415) rather
than letting it fail later as a confusing validation error.

Slow clients: four clients that sent the headers of ``POST /v1/ask`` and one byte of body used
to hold every answer slot for ever, because a slot was taken before the body was read.
``RequestLimits`` now reads every body whole, within ``body_timeout_seconds`` (408 otherwise),
before anything behind it runs; answer slots (``AnswerSlots``) are held only while an answer is
computed; and ``SlowReaders`` closes a connection whose client stops reading a response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.http.errors import error_response

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

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
        has_body = headers.get("content-length", "0").strip() != "0" \
            or "transfer-encoding" in headers
        if path.startswith("/v1/") and not path.startswith(_OWN_CONTENT_TYPES) \
                and not content_type and has_body:
            # Without this, the body was read as JSON anyway and a non-JSON body got a
            # validation message about a "dictionary" that named no header.
            await error_response(415, "unsupported_media_type",
                                 "the request has no Content-Type: send the body as "
                                 "application/json with 'Content-Type: application/json'")(
                scope, receive, send)
            return
        # Read the whole body (chunked or not) before the app sees any of it, so nothing
        # behind this (an answer slot, the index writer) waits on a slow client.
        limit = self.limit_for(path)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                while size <= limit:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body = message.get("body", b"")
                    size += len(body)
                    chunks.append(body)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await error_response(
                408, "request_timeout",
                f"the request body did not arrive within {self.settings.body_timeout_seconds:g}"
                " seconds", headers={"Connection": "close"})(scope, receive, send)
            return
        if size > limit:
            await error_response(413, "body_too_large",
                                 f"request body is over the {limit} byte limit")(
                scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _SlowReader(Exception):
    """The client did not take a response write within the send timeout."""


class SlowReaders:
    """ASGI middleware: a response write the client does not take within ``timeout`` seconds
    ends the request and closes the connection.

    A client that asks for a stream and never reads it would otherwise keep its connection and
    the stream's generator for as long as it likes.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stalled = False

        async def timed_send(message: Message) -> None:
            nonlocal stalled
            try:
                async with asyncio.timeout(self.timeout):
                    await send(message)
            except TimeoutError:
                stalled = True
                raise _SlowReader from None

        try:
            await self.app(scope, receive, timed_send)
        except Exception:  # also an exception group raised around _SlowReader
            if not stalled:
                raise
            logger.warning("closed %s %s: the client read nothing for %g s",
                           scope.get("method"), scope.get("path"), self.timeout)


class AnswerSlots:
    """At most ``limit`` answers are computed at once; the rest wait, in arrival order.

    Every answer runs in a worker thread, and 32 concurrent asks meant 32 threads fighting for
    2 cores and the GIL: requests finished in random order (p99 several times p50) and the
    event loop itself got a 1/33 share, so even /healthz slowed down. In LLM mode an answer
    mostly waits on the upstream, but each still holds a thread, and 60 of them starved the
    pool that /readyz needs. Waiters queue on an asyncio semaphore, which wakes them in arrival
    order and costs no thread. A slot covers the computation only: a request's body is read
    before it is taken and its response is sent after it is given back.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a slot and hold it for the duration of the block."""
        if self.limit <= 0:
            yield
            return
        if self._semaphore is None:  # created in the server's event loop
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            yield

    async def run(self, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``work(*args, **kwargs)`` in a worker thread, inside a slot."""
        async with self.hold():
            return await run_in_threadpool(work, *args, **kwargs)


def answer_slot_limit(settings: Settings) -> int:
    """Answers computed at once: CPU-bound by default, upstream-bound with an LLM writer."""
    return settings.llm_max_concurrent if settings.llm_base_url \
        else settings.max_concurrent_answers
