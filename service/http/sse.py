"""Server-Sent Events: framing, and running blocking work while streaming its progress."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from service.http.limits import AnswerSlots

P = TypeVar("P")
R = TypeVar("R")

#: Headers that keep proxies (nginx) from buffering the stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(data: Any, event: str | None = None) -> str:
    """One SSE frame; ``data`` is JSON-encoded unless it is already a string."""
    if isinstance(data, BaseModel):
        payload = data.model_dump_json()
    elif isinstance(data, str):
        payload = data
    else:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = [f"event: {event}"] if event else []
    lines.extend(f"data: {line}" for line in payload.split("\n"))
    return "\n".join(lines) + "\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` response over already framed events."""
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def text_pieces(text: str, words: int = 3) -> Iterator[str]:
    """``text`` in small pieces split only at whitespace, so no ``[n]`` marker is cut."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    for i in range(0, len(tokens), words):
        yield "".join(tokens[i:i + words])


async def run_with_progress(
    work: Callable[[Callable[[P], None]], R], slots: AnswerSlots | None = None,
) -> AsyncIterator[tuple[Literal["progress", "result"], Any]]:
    """Run blocking ``work(report)`` in a thread; yield what it reports, then its result.

    ``report`` may be called from the worker thread; exceptions of ``work`` propagate. With
    ``slots`` the work waits for an answer slot and gives it back as soon as it is done, not
    when the client has read everything (a client that stops reading keeps no slot).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[P] = asyncio.Queue()

    def report(item: P) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    task = asyncio.ensure_future(slots.run(work, report) if slots is not None
                                 else run_in_threadpool(work, report))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield "progress", getter.result()
                continue
            getter.cancel()
            # Reports made just before the work finished are still queued (or about to be).
            await asyncio.sleep(0)
            while not queue.empty():
                yield "progress", queue.get_nowait()
            yield "result", task.result()
            return
    finally:
        if not task.done():
            task.cancel()
