"""Slow clients hold a connection, never an answer slot (issue 14, item 1).

A client that sends the headers of ``POST /v1/ask`` and then trickles (or never sends) the body,
or one that never reads a streamed answer, used to keep its answer slot: a handful of them
stopped every ask and search. These tests drive the ASGI app directly with such clients (the
TestClient always sends whole bodies and reads whole responses), next to a normal ask.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI

from service.core import QAService
from service.http.app import create_app
from tests.http.conftest import ANSWERABLE, http_settings

ASK = json.dumps({"question": ANSWERABLE[0]}).encode()


def app_for(service: QAService, **overrides: Any) -> FastAPI:
    """An app around ``service`` (what its lifespan would set, set directly)."""
    app = create_app(http_settings(service.settings.data_dir, **overrides), service=service)
    app.state.service = service
    return app


def http_scope(path: str, body_length: int) -> dict[str, Any]:
    """An ASGI scope for ``POST path`` with a JSON body of ``body_length`` bytes."""
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                        (b"content-length", str(body_length).encode())]}


async def whole_request(app: FastAPI, path: str, body: bytes) -> tuple[int, bytes]:
    """Status and body of a request sent and read at full speed."""
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the response is sent
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(http_scope(path, len(body)), receive, send)
    return status, b"".join(chunks)


async def slow_body_request(app: FastAPI, path: str) -> tuple[int, bytes]:
    """A client that announces 100 bytes, sends one, and then nothing."""
    status = 0
    chunks: list[bytes] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(http_scope(path, 100), receive, send)
    return status, b"".join(chunks)


def test_slow_bodies_take_no_answer_slot_and_time_out(service: QAService) -> None:
    app = app_for(service, max_concurrent_answers=1, body_timeout_seconds=4.0)

    async def scenario() -> None:
        assert (await whole_request(app, "/v1/ask", ASK))[0] == 200  # the reader is loaded
        slow = [asyncio.ensure_future(slow_body_request(app, path))
                for path in ("/v1/ask", "/v1/search", "/v1/ask", "/v1/chat/completions")]
        await asyncio.sleep(0.2)  # the slow clients are in before the normal one
        status, body = await asyncio.wait_for(whole_request(app, "/v1/ask", ASK), 10)
        assert status == 200, body
        assert not any(task.done() for task in slow), "answered before its body arrived"
        for status, body in await asyncio.wait_for(asyncio.gather(*slow), 10):
            assert status == 408, body
            assert json.loads(body)["error"]["code"] == "request_timeout"

    asyncio.run(scenario())


def test_a_stream_nobody_reads_gives_up_its_slot_and_is_closed(service: QAService) -> None:
    app = app_for(service, max_concurrent_answers=1, send_timeout_seconds=1.0)

    async def never_reading_stream() -> list[str]:
        body = json.dumps({"question": ANSWERABLE[1]}).encode()
        sent = False
        seen: list[str] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            seen.append(message["type"])
            if message["type"] == "http.response.body" and message.get("body"):
                await asyncio.Event().wait()  # the client's window stays full

        await app(http_scope("/v1/ask/stream", len(body)), receive, send)
        return seen

    async def scenario() -> None:
        stuck = asyncio.ensure_future(never_reading_stream())
        await asyncio.sleep(0.3)
        status, body = await asyncio.wait_for(whole_request(app, "/v1/ask", ASK), 10)
        assert status == 200, body
        seen = await asyncio.wait_for(stuck, 10)  # closed, not held forever
        assert seen[0] == "http.response.start"

    asyncio.run(scenario())
