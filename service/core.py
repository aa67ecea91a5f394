"""The question-answering core: retrieve → select evidence → compose → verify → answer/abstain.

``QAService`` owns the embedder, the live index snapshot (reloaded when a new version is
published) and the support checker. The HTTP app, the CLI and eval/ all call it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from corpus.errors import DocumentNotFound, IndexNotFound, InvalidRequest
from corpus.errors import EmptyQuestion as EmptyQuestionError
from corpus.loader import Document, parse_document, published_bounds
from index.embedding import Embedder, load_embedder
from index.lexical import tokenize
from index.search import Passage, search
from index.store import DataDir, Filters, IndexSnapshot, IndexWriter, IngestResult
from service.answering import (
    AbstainReason,
    Answerer,
    Decision,
    attribution_for,
    merge_decisions,
)
from service.config import Settings
from service.generator import (
    GeneratedAnswer,
    Generator,
    build_generator,
    chunks_for_generation,
)
from service.question import QuestionAnalysis, analyse_question, split_compound
from service.schemas import (
    AnswerSentence,
    AskRequest,
    AskResponse,
    Citation,
    Conflict,
    ConflictValue,
    DocumentChange,
    DocumentIn,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    FiltersIn,
    PassageOut,
    SearchRequest,
    SearchResponse,
    SentenceCitation,
    SourceSpan,
    Support,
    Timings,
)
from service.support import SupportChecker

logger = logging.getLogger(__name__)

EVIDENCE_PASSAGES = 10  # passages whose sentences compete as evidence (at least top_k)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

ABSTAIN_MESSAGES = {
    AbstainReason.NO_RELEVANT_PASSAGES: "The indexed articles do not contain anything relevant "
    "to this question.",
    AbstainReason.INSUFFICIENT_SUPPORT: "The indexed articles touch on this topic but do not "
    "contain an answer to this question.",
    AbstainReason.MISSING_KEY_TERMS: "The indexed articles do not mention {terms} in connection "
    "with this question, so they cannot answer it.",
    AbstainReason.ANSWER_TYPE_NOT_FOUND: "The indexed articles discuss this topic but do not "
    "give the {kind} asked for.",
}
_KIND_WORDS = {"number": "figure", "person": "person", "date": "date", "place": "place",
               "reason": "reason", "organization": "organization", "other": "answer"}


@dataclass
class _Live:
    snapshot: IndexSnapshot | None
    answerer: Answerer | None


def clean_question(text: str, max_chars: int) -> str:
    """Strip control characters and surrogates; refuse empty or over-long questions."""
    cleaned = _CONTROL.sub(" ", text).strip()
    cleaned = re.sub(r"\s+", " ", cleaned)
    if not cleaned:
        raise EmptyQuestionError("the question is empty; send a non-blank 'question'")
    if len(cleaned) > max_chars:
        raise InvalidRequest(
            f"the question is {len(cleaned)} characters long; the limit is {max_chars}"
        )
    return cleaned


def to_filters(filters: FiltersIn | None) -> Filters:
    """Convert request filters to index filters, checking the date range."""
    if filters is None:
        return Filters()
    start, end = filters.published_from, filters.published_to
    if start and end and _pad(start, low=True) > _pad(end, low=False):
        raise InvalidRequest(f"published_from {start} is after published_to {end}")
    return Filters(
        outlets=tuple(filters.outlets),
        published_from=_pad(start, low=True) if start else None,
        published_to=_pad(end, low=False) if end else None,
        doc_ids=tuple(filters.doc_ids),
    )


def _pad(value: str, *, low: bool) -> str:
    first, last = published_bounds(value)
    bound = first if low else last
    if bound is None:
        raise InvalidRequest(f"{value!r} is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)")
    return bound


class QAService:
    """Answers questions over the live index version and applies document changes."""

    def __init__(self, settings: Settings, embedder: Embedder,
                 checker: SupportChecker | None = None,
                 generator: Generator | None = None) -> None:
        self.settings = settings
        # Optional LLM answer writer (GROUNDQA_LLM_*); the extractive composer is the fallback.
        self.generator = generator if generator is not None else build_generator(settings)
        self.embedder = embedder
        # Lexical features alone generalise better than with cosine (WiCE test 0.672 vs 0.643).
        self.checker = checker or SupportChecker()
        self.layout = DataDir(settings.data_dir)
        self._lock = threading.Lock()
        self._live = _Live(None, None)
        self._loaded_version: str | None = None
        self._last_check = 0.0
        self.refresh(force=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> QAService:
        """Build the service, loading the embedding model and the live index."""
        missing = DataDir(settings.data_dir).current_version() is None
        if settings.on_missing_index == "fail" and missing:
            cls._missing_index(settings)
        return cls(settings, load_embedder(settings.embedder))

    @staticmethod
    def _missing_index(settings: Settings) -> None:
        raise IndexNotFound(
            f"no index in {settings.data_dir}: build it with `groundqa ingest corpus/articles`, "
            "or set GROUNDQA_ON_MISSING_INDEX=empty to start with an empty index"
        )

    # -- index lifecycle ----------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Switch to the newest published index version if it changed."""
        now = time.monotonic()
        if not force and now - self._last_check < self.settings.reload_check_seconds:
            return
        self._last_check = now
        version = self.layout.current_version()
        if version == self._loaded_version and not force:
            return
        with self._lock:
            version = self.layout.current_version()
            if version == self._loaded_version and self._live.snapshot is not None:
                return
            if version is None:
                if self.settings.on_missing_index == "fail":
                    self._missing_index(self.settings)
                self._live = _Live(None, None)
                self._loaded_version = None
                return
            snapshot = IndexSnapshot.open(self.settings.data_dir, self.embedder, version)
            self._live = _Live(snapshot, Answerer(snapshot))
            self._loaded_version = version
            logger.info("serving index version %s (%d documents, %d chunks)", version,
                        snapshot.document_count, snapshot.chunk_count)

    def live(self) -> _Live:
        """The snapshot and answerer one request must use throughout (never mixed)."""
        self.refresh()
        return self._live

    @property
    def ready(self) -> bool:
        """Whether an index version is loaded."""
        return self._live.snapshot is not None

    # -- questions ----------------------------------------------------------------------------
    def ask(self, request: AskRequest, *,
            on_passages: Callable[[list[PassageOut]], None] | None = None) -> AskResponse:
        """Answer a question with cited evidence, or abstain with the nearest passages.

        ``on_passages`` is called with the retrieved passages as soon as they are known (the
        streaming routes send them before the answer is written).
        """
        started = time.perf_counter()
        question = clean_question(request.question, self.settings.max_question_chars)
        self._check_top_k(request.top_k)
        filters = to_filters(request.filters)
        live = self.live()
        analysis = analyse_question(question)
        response_id = f"ask-{uuid.uuid4().hex[:16]}"

        t0 = time.perf_counter()
        passages: list[Passage] = []
        evidence_passages: list[Passage] = []
        query_vector = None
        if live.snapshot is not None and live.snapshot.chunk_count:
            query_vector = self.embedder.embed([question])[0]
            # Evidence is drawn from a few more passages than the caller asked to see.
            evidence_passages = search(live.snapshot, self.embedder, question,
                                       max(request.top_k, EVIDENCE_PASSAGES), filters,
                                       query_vector=query_vector)
            passages = evidence_passages[:request.top_k]
        t_retrieve = time.perf_counter() - t0
        if on_passages is not None:
            on_passages([self._passage_out(p) for p in passages])

        t0 = time.perf_counter()
        if live.answerer is None or query_vector is None:
            decision = Decision(False, AbstainReason.NO_RELEVANT_PASSAGES)
        else:
            decision = self._decide(question, analysis, query_vector, evidence_passages,
                                    filters, live.answerer)
        t_select = time.perf_counter() - t0

        t0 = time.perf_counter()
        answer, sentences, citations, conflicts = self._compose(decision, analysis, live)
        generated: GeneratedAnswer | None = None
        if decision.answerable and self.generator is not None and live.answerer is not None:
            assert live.snapshot is not None
            chunks = chunks_for_generation(passages, decision, live.snapshot)
            # Verified inside (markers resolved, support checked); None keeps the extractive.
            generated = self.generator.generate(question, chunks, live.snapshot,
                                                live.answerer.sentences, self.checker)
        t_compose = time.perf_counter() - t0

        t0 = time.perf_counter()
        if generated is None:
            sentences = self._verify(answer, sentences, citations, live)
        else:
            # Conflicts name extractive citation numbers; the LLM answer has its own.
            answer, sentences, citations, conflicts = (generated.answer, generated.sentences,
                                                       generated.citations, [])
        t_verify = time.perf_counter() - t0

        total = time.perf_counter() - started
        return AskResponse(
            id=response_id,
            question=question,
            answerable=decision.answerable,
            abstain_reason=decision.reason.value if decision.reason else None,
            answer=answer,
            answer_type=analysis.answer_type.value,
            sentences=sentences,
            citations=citations,
            conflicts=conflicts,
            passages=[self._passage_out(p) for p in passages],
            timings_ms=Timings(retrieve=_ms(t_retrieve), select=_ms(t_select),
                               compose=_ms(t_compose), verify=_ms(t_verify), total=_ms(total)),
            index_version=live.snapshot.version if live.snapshot else None,
            generator=generated.generator if generated is not None else "extractive",
        )

    def _decide(self, question: str, analysis: QuestionAnalysis, query_vector: np.ndarray,
                passages: list[Passage], filters: Filters, answerer: Answerer) -> Decision:
        """Select evidence; a question that asks two things is answered part by part."""
        parts = split_compound(question)
        if len(parts) == 1:
            return answerer.decide(analysis, query_vector, passages, filters)
        decisions = []
        for part in parts:
            vector = self.embedder.embed([part])[0]
            part_passages = search(answerer.snapshot, self.embedder, part, EVIDENCE_PASSAGES,
                                   filters, query_vector=vector)
            decisions.append(answerer.decide(analyse_question(part), vector, part_passages,
                                             filters))
        return merge_decisions(answerer, decisions)

    def _check_top_k(self, top_k: int) -> None:
        if not 1 <= top_k <= self.settings.max_top_k:
            raise InvalidRequest(f"top_k must be between 1 and {self.settings.max_top_k}")

    def _compose(self, decision: Decision, analysis, live: _Live):  # type: ignore[no-untyped-def]
        if not decision.answerable:
            reason = decision.reason or AbstainReason.INSUFFICIENT_SUPPORT
            message = ABSTAIN_MESSAGES[reason]
            if reason == AbstainReason.MISSING_KEY_TERMS:
                missing = self._missing_names(analysis.text, decision, live)
                message = message.format(terms=missing or "the names in the question")
            else:
                message = message.format(kind=_KIND_WORDS[analysis.answer_type.value])
            return message, [], [], []
        assert live.snapshot is not None
        parts: list[str] = []
        sentences: list[AnswerSentence] = []
        citations: list[Citation] = []
        citation_of_row: dict[int, int] = {}
        position = 0
        for number, selected in enumerate(decision.selected, start=1):
            evidence = selected.evidence
            record = evidence.sentence
            chunk = live.snapshot.chunk(record.chunk_row)
            meta = live.snapshot.document_meta(record.doc_id)
            citations.append(Citation(
                id=number, doc_id=record.doc_id, title=meta["title"], outlet=meta["outlet"],
                published=meta["published"], published_inferred="published" in meta["inferred"],
                chunk_id=chunk.chunk_id, quote=evidence.text,
                source_span=SourceSpan(start=record.start, end=record.end),
            ))
            citation_of_row[record.row] = number
            body = evidence.text if selected.attribution is None \
                else f"{selected.attribution} {evidence.text}"
            text = f"{body} [{number}]"
            if parts:
                position += 1
            sentences.append(AnswerSentence(start=position, end=position + len(text),
                                            citations=[]))
            parts.append(text)
            position += len(text)
        conflicts = [
            Conflict(about=group.about, values=[
                ConflictValue(value=written, citation=citation_of_row[e.sentence.row])
                for written, e in group.members if e.sentence.row in citation_of_row
            ])
            for group in decision.conflicts
        ]
        return " ".join(parts), sentences, citations, conflicts

    def _missing_names(self, question: str, decision: Decision, live: _Live) -> str:
        """The question's names that the best-matching article does not contain."""
        words = re.findall(r"[\w'-]+", question)
        named = [w for i, w in enumerate(words) if i > 0 and w[:1].isupper()]
        if decision.best is None or live.answerer is None:
            return ", ".join(f"“{w}”" for w in dict.fromkeys(named))
        tokens = live.answerer.sentences.doc_tokens(decision.best.sentence.doc_id)
        missing = [w for w in named
                   if not all(t in tokens for t in tokenize([w])[0])
                   and not (w.isupper() and re.search(rf"\b{re.escape(w)}",
                                                      live.answerer.sentences.doc_text[
                                                          decision.best.sentence.doc_id]))]
        return ", ".join(f"“{w}”" for w in dict.fromkeys(missing))

    def _verify(self, answer: str, sentences: list[AnswerSentence], citations: list[Citation],
                live: _Live) -> list[AnswerSentence]:
        """Label each sentence's citation with the support checker."""
        if not sentences:
            return sentences
        pairs = []
        for sentence, citation in zip(sentences, citations, strict=True):
            claim = re.sub(r"\s*\[\d+\]$", "", answer[sentence.start:sentence.end])
            # The attribution lead-in is metadata the composer added, not a claim to check.
            claim = claim.removeprefix(attribution_prefix(claim, citation))
            pairs.append((claim.strip(), [citation.quote]))
        results = self.checker.check_many(pairs)
        out = []
        for sentence, citation, result in zip(sentences, citations, results, strict=True):
            out.append(AnswerSentence(
                start=sentence.start, end=sentence.end,
                citations=[SentenceCitation(id=citation.id, support=Support(
                    label=result.label.value, score=round(float(result.score), 4)))],
            ))
        return out

    def _passage_out(self, passage: Passage) -> PassageOut:
        chunk = passage.chunk
        return PassageOut(
            chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, title=chunk.title,
            outlet=chunk.outlet, published=chunk.published, text=chunk.text,
            source_span=SourceSpan(start=chunk.start, end=chunk.end),
            score=round(passage.score, 6), dense=round(passage.dense, 6),
            lexical=round(passage.lexical, 6),
        )

    def search(self, request: SearchRequest) -> SearchResponse:
        """Ranked passages for a query."""
        started = time.perf_counter()
        query = clean_question(request.query, self.settings.max_question_chars)
        self._check_top_k(request.top_k)
        filters = to_filters(request.filters)
        live = self.live()
        passages: list[Passage] = []
        if live.snapshot is not None:
            passages = search(live.snapshot, self.embedder, query, request.top_k, filters)
        return SearchResponse(
            query=query,
            passages=[self._passage_out(p) for p in passages],
            index_version=live.snapshot.version if live.snapshot else None,
            timings_ms={"total": _ms(time.perf_counter() - started)},
        )

    # -- documents ----------------------------------------------------------------------------
    def list_documents(self) -> DocumentList:
        """Metadata of all indexed documents."""
        live = self.live()
        docs = live.snapshot.documents() if live.snapshot else []
        return DocumentList(
            documents=[DocumentSummary(**{k: d[k] for k in DocumentSummary.model_fields})
                       for d in docs],
            index_version=live.snapshot.version if live.snapshot else None,
        )

    def get_document(self, doc_id: str) -> DocumentOut:
        """One document with the cleaned text that citation offsets refer to."""
        live = self.live()
        if live.snapshot is None:
            raise DocumentNotFound(f"no document with id {doc_id!r} (the index is empty)")
        doc = live.snapshot.document(doc_id)
        return DocumentOut(**{k: doc[k] for k in DocumentOut.model_fields})

    def _writer(self) -> IndexWriter:
        return IndexWriter(self.settings.data_dir, self.embedder,
                           index_type=self.settings.index_type)

    def add_document(self, document: DocumentIn | None = None, *, raw: bytes | None = None,
                     filename: str | None = None) -> DocumentChange:
        """Add or replace a document given as JSON fields or an uploaded file."""
        if document is not None:
            suffix = {"text": ".txt", "markdown": ".md", "html": ".html"}[document.format]
            raw_bytes = document.text.encode("utf-8", errors="replace")
            doc_id = document.doc_id
            metadata = {k: v for k, v in (("title", document.title),
                                          ("outlet", document.outlet),
                                          ("published", document.published)) if v}
            name = doc_id or "document"
        else:
            assert raw is not None
            name = Path(filename or "upload.txt").name
            suffix = Path(name).suffix or ".txt"
            doc_id, metadata = None, {}
            raw_bytes = raw
        metadata_values: dict[str, object] = dict(metadata)
        if doc_id is None:
            base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem).strip("-.")[:60]
            digest = hashlib.sha256(raw_bytes).hexdigest()[:12]
            doc_id = f"{base}-{digest}" if base and base != "document" else f"doc-{digest}"
        parsed: Document = parse_document(raw_bytes, name=name, suffix=suffix, doc_id=doc_id,
                                          metadata=metadata_values, source=f"upload:{name}")
        result = self._writer().apply([parsed], wait_seconds=30.0)
        self.refresh(force=True)
        status: Literal["added", "replaced", "unchanged"] = (
            "added" if result.added else "replaced" if result.replaced else "unchanged")
        return DocumentChange(doc_id=doc_id, status=status, index_version=result.version,
                              warnings=list(parsed.warnings))

    def delete_document(self, doc_id: str) -> DocumentChange:
        """Remove a document's vectors, BM25 entries and rows."""
        result: IngestResult = self._writer().apply(delete=[doc_id], wait_seconds=30.0)
        self.refresh(force=True)
        return DocumentChange(doc_id=doc_id, status="deleted", index_version=result.version)


def attribution_prefix(claim: str, citation: Citation) -> str:
    """The composer's "<source> (<date>) reports:" lead-in at the start of ``claim``, if any."""
    lead = attribution_for(citation.outlet, citation.title, citation.published)
    return lead if claim.startswith(lead) else ""


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


__all__ = ["QAService", "clean_question", "to_filters"]
