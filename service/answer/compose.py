"""The one place that builds answer text, sentences and citations.

An answer leads with the short answer, then quotes the sentence that carries it (and the
sentences of other articles that give the same answer), each with its source and a citation.
Every quote is the document text at its offsets; the short answer lies inside its quote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from corpus.text import fold, is_stop_word
from corpus.text.numbers import find_numbers, same_quantity
from index.store import SentenceRecord, Snapshot
from service.answer.decide import Candidate, Decision, same_answer
from service.schemas import (
    AnswerSentence,
    Citation,
    Conflict,
    ConflictValue,
    ShortAnswer,
    SourceSpan,
)

MAX_CORROBORATING = 2  # further articles quoted when they give the same answer


def format_published(published: str | None) -> str:
    """"2023-01" → "January 2023"; "2022-03-07" → "7 March 2022"; None → "undated"."""
    if not published:
        return "undated"
    parts = published.split("-")
    try:
        if len(parts) == 1:
            return parts[0]
        month = date(2000, int(parts[1]), 1).strftime("%B")
        if len(parts) == 2:
            return f"{month} {parts[0]}"
        return f"{int(parts[2])} {month} {parts[0]}"
    except ValueError:
        return published


def attribution_for(outlet: str, title: str, published: str | None) -> str:
    """"City Ledger (January 2023) reports:" style lead-in for a quoted sentence."""
    source = outlet if outlet and outlet.lower() != "unknown outlet" else f"The article “{title}”"
    return f"{source} ({format_published(published)}) reports:"


@dataclass(frozen=True)
class Quote:
    """The sentence of a document that holds a candidate's span (document offsets)."""

    candidate: Candidate
    doc_id: str
    start: int
    end: int
    text: str
    span_start: int
    span_end: int


@dataclass
class Composed:
    """Everything the response needs from the composer."""

    answer: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    conflicts: list[Conflict]
    short_answer: ShortAnswer | None
    cited: list[int]  # the citation id of each sentence, in order


def quote_for(candidate: Candidate, snapshot: Snapshot,
              document_text: Callable[[str], str]) -> Quote:
    """The stored sentence containing the span (the chunk itself if none holds it whole)."""
    chunk = candidate.passage.chunk
    span_start = chunk.start + candidate.span.start
    span_end = chunk.start + candidate.span.end
    records: list[SentenceRecord] = []
    # A sentence shared by overlapping chunks is stored with one of them: look next door too.
    for row in (chunk.row_id - 1, chunk.row_id, chunk.row_id + 1):
        records.extend(r for r in snapshot.chunk_sentences(row) if r.doc_id == chunk.doc_id)
    holding = [r for r in records if r.start <= span_start and span_end <= r.end]
    start, end = (min(((r.start, r.end) for r in holding), key=lambda se: se[1] - se[0])
                  if holding else (chunk.start, chunk.end))
    text = document_text(chunk.doc_id)
    return Quote(candidate, chunk.doc_id, start, end, text[start:end], span_start, span_end)


def _citation(number: int, quote: Quote, snapshot: Snapshot) -> Citation:
    meta = snapshot.document_meta(quote.doc_id)
    return Citation(
        id=number, doc_id=quote.doc_id, title=meta["title"], outlet=meta["outlet"],
        published=meta["published"], published_inferred="published" in meta["inferred"],
        chunk_id=quote.candidate.passage.chunk.chunk_id, quote=quote.text,
        source_span=SourceSpan(start=quote.start, end=quote.end),
    )


def may_hold(answer: str, passage_text: str) -> bool:
    """Whether a passage can hold a span that ``supporting`` or ``disagreeing`` would take for
    ``answer``: a figure needs a number in the passage (same or differing), anything else one of
    the answer's words other than stop words (the same answer, folded, is contained one way or
    the other). Passages that cannot are not worth reading."""
    if find_numbers(answer):
        return bool(find_numbers(passage_text))
    words = [w for w in re.findall(r"\w+", fold(answer)) if not is_stop_word(w)]
    if not words:
        return True
    folded = fold(passage_text)
    return any(w in folded for w in words)


def supporting(decision: Decision) -> list[Candidate]:
    """Candidates from other documents that give the best candidate's answer."""
    assert decision.best is not None
    best = decision.best
    out: list[Candidate] = []
    seen = {best.passage.chunk.doc_id}
    for other in [*decision.candidates[1:], *decision.others]:
        doc = other.passage.chunk.doc_id
        if doc in seen or other.margin <= 0 or not same_answer(other.span.text, best.span.text):
            continue
        seen.add(doc)
        out.append(other)
        if len(out) == MAX_CORROBORATING:
            break
    return out


def disagreeing(decision: Decision) -> Candidate | None:
    """A figure of the same kind (count, share, money in one currency, year, …) from another
    document that the reader also reads as the answer, if it differs."""
    assert decision.best is not None
    best = decision.best
    kinds = {(m.kind, m.currency) for m in find_numbers(best.span.text)}
    if not kinds:
        return None
    for other in [*decision.candidates[1:], *decision.others]:
        if other.passage.chunk.doc_id == best.passage.chunk.doc_id or other.margin <= 0:
            continue
        # A share is not a count, nor a sum of money a year: only figures of one kind differ.
        if same_quantity(other.span.text, best.span.text) is False and kinds & {
                (m.kind, m.currency) for m in find_numbers(other.span.text)}:
            return other
    return None


def compose(decision: Decision, snapshot: Snapshot, document_text: Callable[[str], str],
            abstain_message: str) -> Composed:
    """Answer text, sentences, citations, conflicts and the short answer of a decision."""
    if not decision.answerable or decision.best is None:
        return Composed(abstain_message, [], [], [], None, [])
    chosen = [decision.best, *supporting(decision)]
    rival = disagreeing(decision)
    if rival is not None:
        chosen.append(rival)
    quotes = [quote_for(c, snapshot, document_text) for c in chosen]
    citations = [_citation(n, q, snapshot) for n, q in enumerate(quotes, start=1)]
    best = quotes[0]
    short = ShortAnswer(text=best.candidate.span.text, citation=1,
                        source_span=SourceSpan(start=best.span_start, end=best.span_end))
    pieces = [f"{short.text} [1]"]
    for number, quote in enumerate(quotes, start=1):
        citation = citations[number - 1]
        lead = attribution_for(citation.outlet, citation.title, citation.published)
        pieces.append(f"{lead} {quote.text} [{number}]")
    sentences, cited, position = [], [], 0
    for index, piece in enumerate(pieces):
        sentences.append(AnswerSentence(start=position, end=position + len(piece), citations=[]))
        cited.append(1 if index == 0 else index)
        position += len(piece) + 1
    conflicts = []
    if rival is not None:
        conflicts.append(Conflict(about=_about(best), values=[
            ConflictValue(value=best.candidate.span.text, citation=1),
            ConflictValue(value=rival.span.text, citation=len(quotes))]))
    return Composed("\n".join(pieces), sentences, citations, conflicts, short, cited)


def _about(quote: Quote) -> str:
    """What the differing figures are about: the words after the figure in its sentence."""
    after = quote.text[quote.span_end - quote.start:].strip()
    words = re.findall(r"[\w'-]+", after)[:4]
    return " ".join(words) or quote.candidate.span.text


def claims(composed: Composed) -> list[tuple[str, list[str]]]:
    """(claim, [quote]) per answer sentence, without markers or the attribution lead-in."""
    pairs = []
    citations = composed.citations
    for sentence, number in zip(composed.sentences, composed.cited, strict=True):
        claim = re.sub(r"\s*\[\d+\]$", "", composed.answer[sentence.start:sentence.end])
        quote = [c.quote for c in citations if c.id == number]
        for citation in citations:
            lead = attribution_for(citation.outlet, citation.title, citation.published)
            if claim.startswith(lead):
                claim = claim[len(lead):]
                break
        pairs.append((claim.strip(), quote))
    return pairs
