"""OpenAI-compatible chat: the model list and chat completions (JSON or streamed)."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from service.http.chat import (
    chat_completion,
    chat_events,
    observe,
    precheck,
    standalone_question,
)
from service.http.chat_schemas import (
    MODEL_ID,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
)
from service.http.deps import Service, Slots
from service.http.errors import error_responses
from service.http.sse import sse_response
from service.schemas import AskRequest

router = APIRouter(tags=["chat"])


@router.get("/v1/models", response_model=ModelList)
def list_models() -> ModelList:
    """The one model groundqa serves, for OpenAI-compatible chat frontends."""
    return ModelList(data=[ModelCard(id=MODEL_ID, created=0)])


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={
    **error_responses(400, 401, 408, 413, 415, 422, 503),
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
async def chat_completions(body: ChatCompletionRequest, svc: Service, slots: Slots,
                           request: Request) -> ChatCompletion | StreamingResponse:
    """OpenAI-compatible chat: a cited Markdown answer; ``groundqa`` carries the citations."""
    # An LLM rewrite is a blocking upstream call: in a worker thread, inside a slot, never on
    # the event loop (it would stall every request, /healthz included).
    rewrite = (await slots.run(standalone_question, svc, body.messages)
               if svc.generator is not None else standalone_question(svc, body.messages))
    ask = AskRequest(question=rewrite.standalone, top_k=body.top_k, filters=body.filters,
                     min_confidence=body.min_confidence)
    precheck(svc, ask)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        return sse_response(chat_events(svc, request, ask, rewrite, completion_id, created,
                                        body.model))
    result = await slots.run(svc.ask, ask)
    observe(request, result)
    return chat_completion(result, rewrite, completion_id, created, body.model)
