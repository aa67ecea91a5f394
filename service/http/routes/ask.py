"""Questions: a cited answer or an abstention, as one JSON body or as Server-Sent Events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from service.http.chat import ask_event_stream, precheck
from service.http.deps import AppMetrics, Service, Slots
from service.http.errors import error_responses
from service.http.metrics import ANSWER_STAGES
from service.schemas import AskRequest, AskResponse

router = APIRouter(tags=["qa"])

_EVENT_STREAM: dict[str, Any] = {"content": {"text/event-stream": {}}}


# With "stream": true the 200 is Server-Sent Events; documented (the fuzzer found it wasn't).
@router.post("/v1/ask", response_model=AskResponse, responses={
    **error_responses(400, 401, 404, 408, 413, 415, 422, 503), 200: _EVENT_STREAM})
async def ask(body: AskRequest, svc: Service, metrics: AppMetrics, slots: Slots,
              response: Response, request: Request) -> AskResponse | Response:
    """Answer a question from the articles with verifiable citations, or abstain."""
    if body.stream:
        return ask_event_stream(svc, body, request)
    precheck(svc, body)
    result = await slots.run(svc.ask, body)
    metrics.observe_stages(result)
    metrics.observe_outcome(result)
    response.headers["Server-Timing"] = ", ".join(
        f"{stage};dur={getattr(result.timings_ms, stage):.2f}"
        for stage in (*ANSWER_STAGES, "total"))
    return result


@router.post("/v1/ask/stream", response_class=StreamingResponse, responses={
    **error_responses(400, 401, 408, 413, 415, 422, 503),
    200: {**_EVENT_STREAM, "description": "Server-Sent Events"}})
async def ask_stream(body: AskRequest, svc: Service, request: Request) -> StreamingResponse:
    """``/v1/ask`` as Server-Sent Events: passages, answer deltas, citations, done."""
    return ask_event_stream(svc, body, request)
