"""A scripted OpenAI-compatible LLM server on loopback, for the generator tests.

The groundqa server the end-to-end tests start lives in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# ---------------------------------------------------------------------------------------------
# A scripted OpenAI-compatible server


@dataclass
class Reply:
    """What the scripted model answers: a status, a message content, after a delay."""

    content: str = ""
    status: int = 200
    delay: float = 0.0


@dataclass
class ScriptedLLM:
    """An OpenAI-compatible ``/v1/chat/completions`` whose replies a test scripts."""

    base_url: str
    script: Callable[[dict[str, Any]], Reply] = lambda request: Reply("")
    requests: list[dict[str, Any]] = field(default_factory=list)


def fenced_passages(request: dict[str, Any]) -> dict[int, str]:
    """Passage number → text, parsed from the fenced block of the last user message."""
    user = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
    block = user[user.index("<passages>"): user.rindex("</passages>")]
    return {int(n): html.unescape(text) for n, text in re.findall(
        r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', block, flags=re.DOTALL)}


def passage_with(request: dict[str, Any], needle: str) -> int:
    """The number of the first passage containing ``needle``."""
    for number, text in fenced_passages(request).items():
        if needle in text:
            return number
    raise AssertionError(f"no passage contains {needle!r}")


@pytest.fixture(scope="session")
def scripted_llm() -> Iterator[ScriptedLLM]:
    """The scripted server on loopback (threaded, so a slow reply blocks nobody else)."""
    state = ScriptedLLM(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            reply = state.script(body)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.status != 200:
                payload = {"error": {"message": "scripted failure", "type": "server_error"}}
            else:
                payload = {"id": "cmpl-1", "object": "chat.completion", "created": 0,
                           "model": body.get("model"),
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant",
                                                    "content": reply.content}}]}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
