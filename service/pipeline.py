"""One question through the rooms: retrieve → read → decide → compose → verify.

Every component is injected (the live index snapshot, the embedder, the span reader, the
decision model, the support checker, the optional LLM writer), so tests can swap any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from index.embedding import Embedder
from index.retrieve import Passage, search
from index.store import Filters, Snapshot
from service.answer.compose import Composed, claims, compose, may_hold
from service.answer.decide import (
    AbstainReason,
    Decision,
    DecisionModel,
    candidates_from,
    decide,
)
from service.answer.question import answer_type_of
from service.answer.reader import SpanReader
from service.generator import MAX_PASSAGES, GeneratedAnswer, Generator
from service.schemas import AnswerSentence, SentenceCitation, Support
from service.support import SupportChecker

ABSTAIN_MESSAGES = {
    AbstainReason.NO_RELEVANT_PASSAGES: "The indexed articles do not contain anything relevant "
    "to this question.",
    AbstainReason.INSUFFICIENT_SUPPORT: "The indexed articles touch on this topic but do not "
    "contain an answer to this question.",
    AbstainReason.MISSING_KEY_TERMS: "The indexed articles do not mention {terms} in connection "
    "with this question, so they cannot answer it.",
    AbstainReason.ANSWER_TYPE_NOT_FOUND: "The indexed articles discuss this topic but do not "
    "give the answer asked for.",
}


@dataclass
class Outcome:
    """What the pipeline found for one question, before it becomes a response."""

    passages: list[Passage]
    decision: Decision
    composed: Composed
    answer_type: str
    generator: str
    timings: dict[str, float]


@dataclass
class AskPipeline:
    """The answering core over one index snapshot (the caller keeps the snapshot live)."""

    snapshot: Snapshot
    embedder: Embedder
    reader: SpanReader
    model: DecisionModel
    checker: SupportChecker
    generator: Generator | None = None
    read_passages: int = 5

    def ask(self, question: str, top_k: int, filters: Filters,
            min_confidence: float | None = None,
            on_passages: Callable[[list[Passage]], None] | None = None,
            generator: Generator | None = None) -> Outcome:
        """Answer ``question`` (already cleaned) or abstain, with the passages retrieved.

        ``generator`` overrides the pipeline's LLM writer for this question.
        """
        generator = generator if generator is not None else self.generator
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        passages: list[Passage] = []
        if self.snapshot.chunk_count:
            # The LLM writer, when there is one, sees more passages than the reader reads.
            wanted = max(top_k, self.read_passages,
                         MAX_PASSAGES if generator is not None else 0)
            passages = search(self.snapshot, self.embedder, question, wanted, filters)
        timings["retrieve"] = time.perf_counter() - t0
        if on_passages is not None:
            on_passages(passages[:top_k])

        t0 = time.perf_counter()
        texts = _DocumentTexts(self.snapshot)
        read = passages[: self.read_passages]
        readings = self.reader.read(question, [p.chunk.text for p in read]) if read else []
        # Names count as present when the article's text, title or outlet carries them
        # ("according to <outlet>").
        decision = decide(question, read, readings, texts.with_source, self.model,
                          min_confidence)
        timings["select"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if decision.answerable and generator is None:
            self._read_other_articles(question, decision, read, passages[len(read):top_k])
        composed = compose(decision, self.snapshot, texts, _abstain_message(decision))
        generated: GeneratedAnswer | None = None
        if decision.answerable and generator is not None:
            chunks = [p.chunk for p in passages][:MAX_PASSAGES]
            generated = generator.generate(question, chunks, self.snapshot, self.checker)
        timings["compose"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if generated is None:
            composed = self._verify(composed)
        else:
            # The LLM writes its own text and citations; the short answer stays the reader's.
            composed = Composed(generated.answer, generated.sentences, generated.citations, [],
                                None, [])
        timings["verify"] = time.perf_counter() - t0
        return Outcome(passages[:top_k], decision, composed, answer_type_of(question),
                       generated.generator if generated is not None else "extractive", timings)

    def _read_other_articles(self, question: str, decision: Decision, read: list[Passage],
                             rest: list[Passage]) -> None:
        """Read the best retrieved passage of each article the decision did not read, so the
        answer can quote articles that agree and list a figure that differs; a passage that
        cannot hold either (``may_hold``) is not read. The decision model reads fewer passages
        than a user asks for (fitted for accuracy, not coverage)."""
        assert decision.best is not None
        answer = decision.best.span.text
        seen = {p.chunk.doc_id for p in read}
        further = []
        for passage in rest:
            if passage.chunk.doc_id not in seen:
                seen.add(passage.chunk.doc_id)
                if may_hold(answer, passage.chunk.text):
                    further.append(passage)
        if further:
            readings = self.reader.read(question, [p.chunk.text for p in further])
            decision.others = candidates_from(further, readings)

    def _verify(self, composed: Composed) -> Composed:
        """Label each sentence's citation with the support checker."""
        if not composed.sentences:
            return composed
        results = self.checker.check_many(claims(composed))
        composed.sentences = [
            AnswerSentence(start=s.start, end=s.end, citations=[SentenceCitation(
                id=number, support=Support(
                    label=r.label.value, score=round(float(r.score), 4),
                    basis="verbatim" if "verbatim in quote" in r.reasons else "checker"))])
            for s, number, r in zip(composed.sentences, composed.cited, results, strict=True)]
        return composed


def _abstain_message(decision: Decision) -> str:
    reason = decision.reason or AbstainReason.INSUFFICIENT_SUPPORT
    message = ABSTAIN_MESSAGES[reason]
    if reason == AbstainReason.MISSING_KEY_TERMS:
        names = ", ".join(f"“{n}”" for n in decision.missing_names)
        message = message.format(terms=names or "the names in the question")
    return message


class _DocumentTexts:
    """Document texts read at most once per question."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._text = lru_cache(maxsize=32)(lambda doc_id: snapshot.document(doc_id)["text"])

    def __call__(self, doc_id: str) -> str:
        return str(self._text(doc_id))

    def with_source(self, doc_id: str) -> str:
        """Title, outlet and text of a document."""
        meta = self.snapshot.document_meta(doc_id)
        return f"{meta['title']}\n{meta['outlet']}\n{self(doc_id)}"
