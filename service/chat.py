"""Chat faces of the core: OpenAI-compatible chat completions and streamed ``/v1/ask``.

Routes stay thin: they pick the question out of the conversation (``standalone_question``),
call ``QAService.ask`` and format the result, as one JSON body or as Server-Sent Events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from corpus.errors import GroundQAError, InvalidRequest
from service.answering import format_published
from service.chat_schemas import (
    MODEL_ID,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    GroundQAResult,
    ModelCard,
    ModelList,
)
from service.core import QAService, clean_question, to_filters
from service.rewrite import Rewrite, rewrite_followup
from service.schemas import AskRequest, AskResponse, Citation, ErrorResponse, PassageOut
from service.sse import run_with_progress, sse_event, sse_response, text_pieces

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 503)}
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}}


def get_service(request: Request) -> QAService:
    """The QAService built in the app's lifespan."""
    return request.app.state.service  # type: ignore[no-any-return]


Service = Annotated[QAService, Depends(get_service)]


# -- the conversation -------------------------------------------------------------------------
def standalone_question(svc: QAService, messages: list[ChatMessage]) -> Rewrite:
    """The last user message, rewritten against earlier user turns when it is a follow-up."""
    users = [m.text().strip() for m in messages if m.role == "user" and m.text().strip()]
    if not users:
        raise InvalidRequest("messages must contain a non-empty user message")
    *history, question = users
    if history and svc.generator is not None:
        llm_text = svc.generator.rewrite(history, question)
        if llm_text:
            return Rewrite(question, llm_text, llm_text != question, svc.generator.name)
    return rewrite_followup(history, question)


def to_markdown(result: AskResponse) -> str:
    """The answer with its markers, flagged sentences marked, and a numbered source list."""
    answer = result.answer
    for sentence in sorted(result.sentences, key=lambda s: s.end, reverse=True):
        if sentence.flagged:
            answer = f"{answer[:sentence.end]} *(not supported by the sources)*" \
                     f"{answer[sentence.end:]}"
    if not result.citations:
        return answer
    lines = [answer, "", "**Sources**", ""]
    by_doc: dict[str, list[Citation]] = {}
    for citation in result.citations:  # quotes from one article share a line
        by_doc.setdefault(citation.doc_id, []).append(citation)
    for group in by_doc.values():
        first = group[0]
        markers = " ".join(f"[{c.id}]" for c in group)
        lines.append(f"- {markers} {first.outlet}, {format_published(first.published)} — "
                     f"*{first.title}*")
    return "\n".join(lines)


def _extra(result: AskResponse, rewrite: Rewrite) -> GroundQAResult:
    return GroundQAResult(
        ask_id=result.id, question=rewrite.original, searched=result.question,
        rewritten=rewrite.rewritten, rewrite_method=rewrite.method,
        answerable=result.answerable, abstained=not result.answerable,
        abstain_reason=result.abstain_reason, answer=result.answer,
        sentences=result.sentences, citations=result.citations, conflicts=result.conflicts,
        generator=result.generator, index_version=result.index_version,
    )


def _searched_line(rewrite: Rewrite) -> str:
    return f"*Searched for: {rewrite.standalone}*\n\n" if rewrite.rewritten else ""


def _observe(request: Request, result: AskResponse) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is None:
        return
    if result.answerable:
        metrics.answers.inc()
    else:
        metrics.abstentions.labels(result.abstain_reason or "unknown").inc()


def precheck(svc: QAService, body: AskRequest) -> None:
    """Refuse a bad request before a stream starts, so it still gets a JSON 4xx."""
    clean_question(body.question, svc.settings.max_question_chars)
    if not 1 <= body.top_k <= svc.settings.max_top_k:
        raise InvalidRequest(f"top_k must be between 1 and {svc.settings.max_top_k}")
    to_filters(body.filters)


def _error_body(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, GroundQAError):
        return {"error": {"code": exc.code, "message": exc.message}}
    return {"error": {"code": "internal_error", "message": "an unexpected error occurred"}}


# -- routes -----------------------------------------------------------------------------------
@router.get("/v1/models", response_model=ModelList, tags=["chat"])
def list_models() -> ModelList:
    """The one model groundqa serves, for OpenAI-compatible chat frontends."""
    return ModelList(data=[ModelCard(id=MODEL_ID, created=0)])


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             responses={**_ERRORS, **_STREAM}, tags=["chat"])
async def chat_completions(body: ChatCompletionRequest, svc: Service,
                           request: Request) -> ChatCompletion | StreamingResponse:
    """OpenAI-compatible chat: a cited Markdown answer; ``groundqa`` carries the citations."""
    rewrite = standalone_question(svc, body.messages)
    ask = AskRequest(question=rewrite.standalone, top_k=body.top_k, filters=body.filters)
    precheck(svc, ask)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        return sse_response(_chat_events(svc, request, ask, rewrite, completion_id, created,
                                         body.model))
    result = await run_in_threadpool(svc.ask, ask)
    _observe(request, result)
    content = _searched_line(rewrite) + to_markdown(result)
    return ChatCompletion(id=completion_id, created=created, model=body.model,
                          choices=[Choice(message=AssistantMessage(content=content))],
                          groundqa=_extra(result, rewrite))


async def _chat_events(svc: QAService, request: Request, ask: AskRequest, rewrite: Rewrite,
                       completion_id: str, created: int, model: str) -> AsyncIterator[str]:
    def chunk(delta: Delta, finish: bool = False,
              extra: GroundQAResult | None = None) -> str:
        frame = ChatCompletionChunk(id=completion_id, created=created, model=model,
                                    choices=[ChunkChoice(delta=delta,
                                                         finish_reason="stop" if finish else None)],
                                    groundqa=extra)
        return sse_event(frame.frame())

    yield chunk(Delta(role="assistant", content=""))
    if rewrite.rewritten:  # known before retrieval: show it while the answer is made
        yield chunk(Delta(content=_searched_line(rewrite)))
    try:
        result: AskResponse | None = None
        async for kind, value in run_with_progress(lambda report: svc.ask(ask)):
            if kind == "result":
                result = value
    except Exception as exc:  # the stream has started: report in-band, as OpenAI does
        yield sse_event(_error_body(exc))
        yield sse_event("[DONE]")
        return
    assert result is not None
    _observe(request, result)
    for piece in text_pieces(to_markdown(result)):
        yield chunk(Delta(content=piece))
    yield chunk(Delta(), finish=True, extra=_extra(result, rewrite))
    yield sse_event("[DONE]")


@router.post("/v1/ask/stream", responses={**_ERRORS, **_STREAM}, tags=["qa"],
             response_class=StreamingResponse)
def ask_stream(body: AskRequest, svc: Service, request: Request) -> StreamingResponse:
    """``/v1/ask`` as Server-Sent Events: passages, answer deltas, citations, done."""
    return ask_event_stream(svc, body, request)


def ask_event_stream(svc: QAService, body: AskRequest, request: Request) -> StreamingResponse:
    """Events ``passages``, ``answer`` (``{"delta"}``, repeated), ``citations`` and ``done``
    (the complete ``AskResponse``); ``error`` if the answer fails after the stream began."""
    precheck(svc, body)
    return sse_response(_ask_events(svc, body, request))


async def _ask_events(svc: QAService, body: AskRequest, request: Request) -> AsyncIterator[str]:
    def work(report: Callable[[list[PassageOut]], None]) -> AskResponse:
        return svc.ask(body, on_passages=report)

    try:
        result: AskResponse | None = None
        async for kind, value in run_with_progress(work):
            if kind == "progress":
                yield sse_event({"passages": [p.model_dump() for p in value]}, "passages")
            else:
                result = value
    except Exception as exc:
        yield sse_event(_error_body(exc), "error")
        return
    assert result is not None
    _observe(request, result)
    for piece in text_pieces(result.answer):
        yield sse_event({"delta": piece}, "answer")
    yield sse_event({"answerable": result.answerable, "abstain_reason": result.abstain_reason,
                     "citations": [c.model_dump() for c in result.citations],
                     "sentences": [s.model_dump() for s in result.sentences],
                     "conflicts": [c.model_dump() for c in result.conflicts]}, "citations")
    yield sse_event(result, "done")
