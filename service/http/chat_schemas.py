"""OpenAI-compatible chat-completions request and response models.

Standard clients read ``choices[0].message.content`` (Markdown: the cited answer and a numbered
source list); groundqa-aware clients also read the extra ``groundqa`` field, which carries the
same citation objects as ``/v1/ask``. Unknown OpenAI parameters (temperature, max_tokens, …)
are accepted and ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import (
    VISIBLE_CHARACTER,
    AnswerSentence,
    Citation,
    Conflict,
    Count,
    FiltersIn,
    ShortAnswer,
)

MODEL_ID = "groundqa"


class ContentPart(BaseModel):
    """One part of a multi-part message; only text parts are read."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """A conversation turn."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            return " ".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the last user message is the question."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(default=MODEL_ID, description="Any value; echoed back.")
    # The schema says what the server needs: a user message with visible text.
    messages: list[ChatMessage] = Field(min_length=1, max_length=200, json_schema_extra={
        "contains": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"const": "user"},
            "content": {"anyOf": [
                {"type": "string", "pattern": VISIBLE_CHARACTER},
                {"type": "array", "contains": {
                    "type": "object", "required": ["type", "text"], "properties": {
                        "type": {"const": "text"},
                        "text": {"type": "string", "pattern": VISIBLE_CHARACTER}}}}]}}}})
    # strict, as in /v1/ask: "5" or "true" are refused, not read as a number or a flag.
    stream: bool = Field(default=False, strict=True)
    top_k: Count = Field(default=5, ge=1, le=50, strict=True,
                         description="groundqa extension: passages.")
    filters: FiltersIn | None = Field(default=None, description="groundqa extension.")
    min_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, strict=True,
        description="groundqa extension: answer only at or above this calibrated confidence "
        "(default: the server's threshold).")


class GroundQAResult(BaseModel):
    """The extra ``groundqa`` field: what was searched and the verifiable answer."""

    ask_id: str
    question: str = Field(description="The last user message as sent.")
    searched: str = Field(description="The standalone question actually searched.")
    rewritten: bool = Field(description="True when a follow-up was rewritten using earlier turns.")
    rewrite_method: str = Field(description="none, deterministic or llm:<model>.")
    answerable: bool
    abstained: bool = Field(description="True when groundqa declined to answer.")
    abstain_reason: str | None
    answer: str = Field(description="The answer text the sentences' offsets index into.")
    short_answer: ShortAnswer | None = Field(
        default=None, description="The exact answer span (as in /v1/ask), or null.")
    confidence: float | None = Field(default=None, description="Calibrated probability that "
                                     "the short answer is right.")
    sentences: list[AnswerSentence]
    citations: list[Citation]
    conflicts: list[Conflict]
    generator: str
    index_version: str | None


class AssistantMessage(BaseModel):
    """The reply message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The single choice groundqa returns."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A chat completion, OpenAI's shape plus ``groundqa``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    groundqa: GroundQAResult


class Delta(BaseModel):
    """A piece of the streamed message."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The streamed choice."""

    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One SSE chunk; the last one before ``[DONE]`` carries ``groundqa``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    groundqa: GroundQAResult | None = None

    def frame(self) -> dict[str, Any]:
        """The JSON sent: OpenAI's shape (no null delta fields, no empty ``groundqa``)."""
        data = self.model_dump(exclude={"groundqa"} if self.groundqa is None else set())
        for choice in data["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        return data


class ModelCard(BaseModel):
    """An entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "groundqa"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
