"""Request and response models of the HTTP API (also used in-process by eval/)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

# The request contract says what the validation does, so that a request the OpenAPI schema
# allows is accepted and one it forbids is refused (schemathesis checks both directions).

_YEAR_OR_MONTH = r"^(?!0000)\d{4}(-(0[1-9]|1[0-2]))?$"


def _calendar_date(value: str) -> str:
    """A year, a year and month, or a real calendar day (2023-02-30 is refused)."""
    if re.fullmatch(_YEAR_OR_MONTH, value):
        return value
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ValueError("must be a date: YYYY, YYYY-MM or YYYY-MM-DD (a real calendar day)")


#: ``YYYY``, ``YYYY-MM`` or a calendar date; the schema says the same (``format: date``).
PublishedDate = Annotated[str, AfterValidator(_calendar_date), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": _YEAR_OR_MONTH},
              {"type": "string", "format": "date"}],
    "description": "YYYY, YYYY-MM or YYYY-MM-DD (a calendar date)."})]


def _integral(value: object) -> object:
    """An integral JSON number (``38.0``, ``1e1``) as that integer: JSON Schema's
    ``integer`` includes them. ``38.5``, ``"5"`` and ``true`` are still refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A character ``clean_question`` keeps: not whitespace (``str.isspace``), not a control,
#: surrogate or invisible format character. A question needs one.
#: (Lone surrogates, which the server also drops, are left out: schema tools cannot use a
#: pattern that names them, and JSON text carries them only as escapes.)
VISIBLE_CHARACTER = ("[^\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200f\\u2028-\\u202f"
                     "\\u205f-\\u2064\\u3000\\ufeff]")

#: A whole number of things: strict (no strings, no booleans) but integral floats accepted.
Count = Annotated[int, BeforeValidator(_integral)]


class FiltersIn(BaseModel):
    """Restrict retrieval to outlets, a publication date range or documents."""

    model_config = ConfigDict(extra="forbid")

    outlets: list[str] = Field(default_factory=list, max_length=100)
    published_from: PublishedDate | None = Field(
        default=None,
        description="Inclusive lower bound, YYYY[-MM[-DD]]; a document dated to a month "
        "matches if any day of that month is in range.")
    published_to: PublishedDate | None = Field(
        default=None, description="Inclusive upper bound, YYYY[-MM[-DD]]; not before "
        "published_from.")
    doc_ids: list[str] = Field(default_factory=list, max_length=1000)


class AskRequest(BaseModel):
    """A question and how many passages to retrieve."""

    model_config = ConfigDict(extra="forbid")

    # Blank after removing control and invisible characters is refused by the core with
    # `empty_question`; the schema says so with a pattern (it needs one visible character).
    # Its maxLength is the server's setting (written into the OpenAPI schema by the app).
    question: str = Field(description="The question, 1–1000 characters (configurable).",
                          json_schema_extra={"minLength": 1, "pattern": VISIBLE_CHARACTER})
    # strict: "5", 5.0 and true are not silently turned into a number of passages.
    top_k: Count = Field(default=5, ge=1, le=50, strict=True,
                         description="Passages to retrieve and return.")
    filters: FiltersIn | None = None
    min_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, strict=True,
        description="Answer only when the calibrated confidence reaches this (default: the "
        "server's calibrated threshold); 0 never abstains when anything was retrieved.")
    stream: bool = Field(default=False, strict=True,
                         description="Stream Server-Sent Events (see /v1/ask/stream).")


class SearchRequest(BaseModel):
    """A passage search."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(json_schema_extra={"minLength": 1, "pattern": VISIBLE_CHARACTER})
    top_k: Count = Field(default=10, ge=1, le=50, strict=True)
    filters: FiltersIn | None = None


class SourceSpan(BaseModel):
    """Character offsets into the document text returned by GET /v1/documents/{doc_id}."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Support(BaseModel):
    """Whether a citation's quote supports the sentence it is attached to."""

    label: Literal["supported", "partial", "unsupported"]
    score: float = Field(ge=0.0, le=1.0)
    basis: Literal["verbatim", "checker"] = Field(
        default="checker",
        description="`verbatim`: the sentence is the quoted text itself (extractive answers), "
        "so `supported` only says the quote is exact, not that it answers the question (see "
        "`confidence` for that); `checker`: the support checker judged a sentence written "
        "from the quote (LLM answers), `score` being its calibrated probability.")


class SentenceCitation(BaseModel):
    """A citation marker attached to an answer sentence, with its support label."""

    id: int
    support: Support


class AnswerSentence(BaseModel):
    """A sentence of the answer: ``answer[start:end]``, and the citations backing it."""

    start: int
    end: int
    citations: list[SentenceCitation]
    flagged: bool = Field(default=False, description="True when the support checker found the "
                          "sentence unsupported and it was kept, flagged, rather than removed "
                          "(LLM generator with GROUNDQA_LLM_UNSUPPORTED=flag).")


class Citation(BaseModel):
    """A verbatim quote: ``quote == document.text[source_span.start:source_span.end]``."""

    id: int = Field(description="The number used in the answer's [n] markers.")
    doc_id: str
    title: str
    outlet: str
    published: str | None = Field(description="YYYY, YYYY-MM or YYYY-MM-DD, as precise as known.")
    published_inferred: bool = Field(
        description="True when the date was worked out from the text rather than stated.")
    chunk_id: str
    quote: str
    source_span: SourceSpan


class ShortAnswer(BaseModel):
    """The direct answer: ``text == document.text[source_span.start:source_span.end]``.

    It lies inside the quote of citation ``citation``.
    """

    text: str
    citation: int = Field(description="The id of the citation whose quote holds the answer.")
    source_span: SourceSpan


class ConflictValue(BaseModel):
    """One of several differing figures, and the citation that gives it."""

    value: str
    citation: int


class Conflict(BaseModel):
    """Sources that disagree about a figure."""

    about: str
    values: list[ConflictValue]


class PassageOut(BaseModel):
    """A retrieved passage with its fused, dense (cosine) and lexical (BM25) scores."""

    chunk_id: str
    doc_id: str
    title: str
    outlet: str
    published: str | None
    text: str
    source_span: SourceSpan
    score: float
    dense: float
    lexical: float


class Timings(BaseModel):
    """Milliseconds spent per stage."""

    retrieve: float
    select: float
    compose: float
    verify: float
    total: float


class AskResponse(BaseModel):
    """A cited answer, or an abstention with the nearest passages.

    Guarantees: ``sentences[].start/end`` index into ``answer``; every ``[n]`` marker in
    ``answer`` resolves to ``citations[].id``; every ``citation.quote`` equals
    ``document.text[source_span.start:source_span.end]`` for the document returned by
    ``GET /v1/documents/{doc_id}``.
    """

    id: str
    question: str
    answerable: bool
    abstain_reason: (
        Literal["no_relevant_passages", "insufficient_support", "missing_key_terms",
                "answer_type_not_found", "empty_index"] | None
    )
    answer: str = Field(description="The short answer first, then the quoted sentences that "
                        "carry it, each with its source and [n] markers; on abstention, why.")
    short_answer: ShortAnswer | None = Field(
        default=None, description="The exact answer span, or null when abstaining.")
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Calibrated probability that the short answer is right (also given when "
        "abstaining: how close it came). Answers need at least the server's min_confidence.")
    answer_type: str = Field(description="What the question asks for: number, person, date, "
                             "place, reason, organization or other.")
    sentences: list[AnswerSentence]
    citations: list[Citation]
    conflicts: list[Conflict]
    passages: list[PassageOut]
    timings_ms: Timings
    index_version: str | None
    generator: str = Field(default="extractive", description="What wrote the answer text.")


class SearchResponse(BaseModel):
    """Ranked passages for a query."""

    query: str
    passages: list[PassageOut]
    index_version: str | None
    timings_ms: dict[str, float]


class DocumentIn(BaseModel):
    """A document to add or replace, as plain text, Markdown or HTML."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    format: Literal["text", "markdown", "html"] = "text"
    doc_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    title: str | None = Field(default=None, max_length=500)
    outlet: str | None = Field(default=None, max_length=200)
    published: PublishedDate | None = None


class DocumentSummary(BaseModel):
    """Metadata of an indexed document."""

    doc_id: str
    title: str
    outlet: str
    published: str | None
    inferred: list[str]
    content_hash: str
    length: int
    ingested_at: str


class DocumentOut(DocumentSummary):
    """An indexed document with its cleaned text (the text all offsets refer to)."""

    text: str


class DocumentList(BaseModel):
    """All indexed documents."""

    documents: list[DocumentSummary]
    index_version: str | None


class DocumentChange(BaseModel):
    """The outcome of adding, replacing or deleting a document."""

    doc_id: str
    status: Literal["added", "replaced", "unchanged", "deleted"]
    index_version: str | None
    warnings: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Machine-readable error code and a message for people."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    error: ErrorBody
