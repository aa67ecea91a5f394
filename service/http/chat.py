"""Chat and streaming faces of the core: a conversation → one question, Markdown, SSE events.

The routes (``routes/chat.py``, ``routes/ask.py``) stay thin: they pick the question out of the
conversation (``standalone_question``), call ``QAService.ask`` and format the result with the
helpers here, as one JSON body or as Server-Sent Events.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from corpus.errors import InvalidRequest
from service.answer.compose import format_published
from service.core import QAService, clean_question, to_filters
from service.http.chat_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    GroundQAResult,
)
from service.http.errors import in_band_error
from service.http.limits import AnswerSlots
from service.http.metrics import Metrics
from service.http.sse import run_with_progress, sse_event, sse_response, text_pieces
from service.rewrite import Rewrite, rewrite_followup
from service.schemas import AskRequest, AskResponse, Citation, PassageOut


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


def _markdown_text(text: str) -> str:
    """Article text made inert in Markdown: HTML escaped (a frontend that renders HTML must not
    run an article's markup) and emphasis characters escaped."""
    return re.sub(r"([\\*_`\[\]])", r"\\\1", html.escape(text, quote=False))


def _sentence_markdown(result: AskResponse, index: int) -> str:
    """One answer sentence in Markdown: the short answer in bold, highlighted in its quote."""
    sentence = result.sentences[index]
    text = result.answer[sentence.start:sentence.end]
    short = result.short_answer
    marker = re.search(r"\s*(\[\d+\])+$", text)
    body, markers = (text[:marker.start()], text[marker.start():]) if marker else (text, "")
    if short is not None and index == 0 and body == short.text:
        return f"**{_markdown_text(body)}**{markers}"
    cited = [c for c in result.citations if c.id in {s.id for s in sentence.citations}]
    if short is not None and cited and cited[0].id == short.citation \
            and body.endswith(cited[0].quote):
        quote = cited[0].quote
        at = short.source_span.start - cited[0].source_span.start
        lead = body[: len(body) - len(quote)]
        body_md = (_markdown_text(lead) + _markdown_text(quote[:at]) + "**"
                   + _markdown_text(quote[at:at + len(short.text)]) + "**"
                   + _markdown_text(quote[at + len(short.text):]))
        return body_md + markers
    return _markdown_text(body) + markers


def to_markdown(result: AskResponse) -> str:
    """The short answer first (bold), the quotes that carry it (the answer bold inside its
    quote), flagged sentences marked, and a numbered source list. Article text is escaped."""
    if not result.sentences:
        return _markdown_text(result.answer)
    parts = []
    for index, sentence in enumerate(result.sentences):
        piece = _sentence_markdown(result, index)
        if sentence.flagged:
            piece += " *(not supported by the sources)*"
        parts.append(piece)
    answer = "\n\n".join(parts) if result.short_answer is not None else " ".join(parts)
    if not result.citations:
        return answer
    lines = [answer, "", "**Sources**", ""]
    by_doc: dict[str, list[Citation]] = {}
    for citation in result.citations:  # quotes from one article share a line
        by_doc.setdefault(citation.doc_id, []).append(citation)
    for group in by_doc.values():
        first = group[0]
        markers = " ".join(f"[{c.id}]" for c in group)
        lines.append(f"- {markers} {_markdown_text(first.outlet)}, "
                     f"{format_published(first.published)} — *{_markdown_text(first.title)}*")
    return "\n".join(lines)


def groundqa_result(result: AskResponse, rewrite: Rewrite) -> GroundQAResult:
    """The ``groundqa`` extension field of a chat completion."""
    return GroundQAResult(
        ask_id=result.id, question=rewrite.original, searched=result.question,
        rewritten=rewrite.rewritten, rewrite_method=rewrite.method,
        answerable=result.answerable, abstained=not result.answerable,
        abstain_reason=result.abstain_reason, answer=result.answer,
        short_answer=result.short_answer, confidence=result.confidence,
        sentences=result.sentences, citations=result.citations, conflicts=result.conflicts,
        generator=result.generator, index_version=result.index_version,
    )


def searched_line(rewrite: Rewrite) -> str:
    """The "Searched for" line shown above an answer to a rewritten follow-up; the question
    comes from the user (or the LLM rewriter), so it is escaped like article text."""
    return f"*Searched for: {_markdown_text(rewrite.standalone)}*\n\n" if rewrite.rewritten \
        else ""


def answer_slots(request: Request) -> AnswerSlots | None:
    """The app's answer slots (``None`` for an app that keeps none)."""
    return getattr(request.app.state, "answer_slots", None)


def observe(request: Request, result: AskResponse) -> None:
    """Count the outcome in the app's metrics, when the app keeps them."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_outcome(result)


def check_length(text: str, limit: int) -> None:
    """Refuse a question over ``limit`` characters as sent (the OpenAPI ``maxLength``), not
    only after whitespace is collapsed: the schema and the server must agree."""
    if len(text) > limit:
        raise InvalidRequest(f"the question is {len(text)} characters long; the limit is {limit}")


def precheck(svc: QAService, body: AskRequest) -> None:
    """Refuse a bad request before a stream starts (or a slot is taken), so it still gets a
    JSON 4xx at once."""
    check_length(body.question, svc.settings.max_question_chars)
    clean_question(body.question, svc.settings.max_question_chars)
    if not 1 <= body.top_k <= svc.settings.max_top_k:
        raise InvalidRequest(f"top_k must be between 1 and {svc.settings.max_top_k}")
    to_filters(body.filters)


def chat_completion(result: AskResponse, rewrite: Rewrite, completion_id: str, created: int,
                    model: str) -> ChatCompletion:
    """A whole chat completion: the cited Markdown answer and the ``groundqa`` field."""
    content = searched_line(rewrite) + to_markdown(result)
    return ChatCompletion(id=completion_id, created=created, model=model,
                          choices=[Choice(message=AssistantMessage(content=content))],
                          groundqa=groundqa_result(result, rewrite))


# -- streams ----------------------------------------------------------------------------------
async def chat_events(svc: QAService, request: Request, ask: AskRequest, rewrite: Rewrite,
                      completion_id: str, created: int, model: str) -> AsyncIterator[str]:
    """A chat completion as OpenAI's SSE chunks; the last one before ``[DONE]`` carries
    ``groundqa``; an error after the stream began is sent in-band."""

    def chunk(delta: Delta, finish: bool = False,
              extra: GroundQAResult | None = None) -> str:
        frame = ChatCompletionChunk(id=completion_id, created=created, model=model,
                                    choices=[ChunkChoice(delta=delta,
                                                         finish_reason="stop" if finish else None)],
                                    groundqa=extra)
        return sse_event(frame.frame())

    yield chunk(Delta(role="assistant", content=""))
    if rewrite.rewritten:  # known before retrieval: show it while the answer is made
        yield chunk(Delta(content=searched_line(rewrite)))
    try:
        result: AskResponse | None = None
        async for kind, value in run_with_progress(lambda report: svc.ask(ask),
                                                   answer_slots(request)):
            if kind == "result":
                result = value
    except Exception as exc:  # the stream has started: report in-band, as OpenAI does
        yield sse_event(in_band_error(exc))
        yield sse_event("[DONE]")
        return
    assert result is not None
    observe(request, result)
    for piece in text_pieces(to_markdown(result)):
        yield chunk(Delta(content=piece))
    yield chunk(Delta(), finish=True, extra=groundqa_result(result, rewrite))
    yield sse_event("[DONE]")


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
        async for kind, value in run_with_progress(work, answer_slots(request)):
            if kind == "progress":
                yield sse_event({"passages": [p.model_dump() for p in value]}, "passages")
            else:
                result = value
    except Exception as exc:
        yield sse_event(in_band_error(exc), "error")
        return
    assert result is not None
    observe(request, result)
    for piece in text_pieces(result.answer):
        yield sse_event({"delta": piece}, "answer")
    yield sse_event({"answerable": result.answerable, "abstain_reason": result.abstain_reason,
                     "citations": [c.model_dump() for c in result.citations],
                     "sentences": [s.model_dump() for s in result.sentences],
                     "conflicts": [c.model_dump() for c in result.conflicts]}, "citations")
    yield sse_event(result, "done")
