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

from corpus.errors import (
    DocumentNotFound,
    EmbeddingMismatch,
    GroundQAError,
    IndexCorrupt,
    IndexNotFound,
    InvalidRequest,
    ModelNotFound,
)
from corpus.errors import EmptyQuestion as EmptyQuestionError
from corpus.loader import Document, parse_document, published_bounds
from index.embedding import Embedder, load_embedder
from index.embedding.onnx import set_spinning
from index.ingest import IndexWriter, IngestResult
from index.retrieve import Passage, search
from index.store import Filters, Snapshot, Store, open_store
from service.answer.decide import AbstainReason, DecisionModel, packaged_model
from service.answer.question import answer_type_of
from service.answer.reader import SpanReader
from service.config import Settings
from service.generator import Generator, build_generator
from service.pipeline import ABSTAIN_MESSAGES, AskPipeline
from service.schemas import (
    AskRequest,
    AskResponse,
    DocumentChange,
    DocumentIn,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    FiltersIn,
    PassageOut,
    SearchRequest,
    SearchResponse,
    SourceSpan,
    Timings,
)
from service.support import SupportChecker

logger = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\u2028\u2029]")
# Invisible format characters (zero-width space and joiners, marks, BOM) are dropped, so a
# question made only of them is empty.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


@dataclass
class _Live:
    snapshot: Snapshot | None
    pipeline: AskPipeline | None


def index_location(settings: Settings) -> str:
    """Where the index lives, for messages (a database URL without its password)."""
    if settings.database_url:
        from index.store.postgres import redact_url

        return f"the database at {redact_url(settings.database_url)}"
    return str(settings.data_dir)


def clean_question(text: str, max_chars: int) -> str:
    """Strip control characters and surrogates; refuse empty or over-long questions."""
    cleaned = _CONTROL.sub(" ", _INVISIBLE.sub("", text)).strip()
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
                 generator: Generator | None = None,
                 reader: SpanReader | None = None,
                 decision_model: DecisionModel | None = None,
                 store: Store | None = None) -> None:
        self.settings = settings
        try:
            self.reader = reader or SpanReader.load(settings.reader_model,
                                                    threads=settings.reader_threads)
            self.decision_model = decision_model or (
                DecisionModel.load(settings.decision_model) if settings.decision_model
                else packaged_model())
        except (OSError, ValueError, KeyError) as exc:
            raise ModelNotFound(
                f"cannot load the answering models ({exc}); reinstall groundqa or point "
                "GROUNDQA_READER_MODEL / GROUNDQA_DECISION_MODEL at files written by "
                "`groundqa train reader` / `groundqa train decide`") from exc
        # Optional LLM answer writer (GROUNDQA_LLM_*); the extractive composer is the fallback.
        self.generator = generator if generator is not None else build_generator(settings)
        self.embedder = embedder
        # The trained checker (service/support/models/checker); lexical if its files are missing.
        self.checker = checker or SupportChecker.shipped()
        # The embedded files, or PostgreSQL when GROUNDQA_DATABASE_URL is set.
        self.store: Store = store or open_store(settings.data_dir, settings.database_url,
                                                settings.index_type)
        # A shared store changes under other processes, possibly on other machines: its live
        # version is read at the start of every request (one indexed row), so a delete that
        # returned anywhere is never cited afterwards. Files on one machine are polled.
        self._check_every_request = bool(getattr(self.store, "shared", False))
        self._lock = threading.Lock()
        self._live = _Live(None, None)
        self._loaded_version: str | None = None
        self._last_check = 0.0
        # Why the published version is not the one served (a damaged pointer or version), and
        # the version refused, so that it is verified and logged once, not at every check.
        self._problem: GroundQAError | None = None
        self._refused_version: str | None = None
        self._problem_lock = threading.Lock()
        self.refresh(force=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> QAService:
        """Build the service, loading the embedding model and the live index."""
        set_spinning(settings.onnx_spinning)  # before any ONNX model loads
        store = open_store(settings.data_dir, settings.database_url, settings.index_type)
        missing = store.current_version() is None
        if settings.on_missing_index == "fail" and missing:
            cls._missing_index(settings)
        return cls(settings, load_embedder(settings.embedder), store=store)

    @staticmethod
    def _missing_index(settings: Settings) -> None:
        raise IndexNotFound(
            f"no index in {index_location(settings)}: build it with `groundqa ingest "
            "corpus/articles`, or set GROUNDQA_ON_MISSING_INDEX=empty to start with an empty index"
        )

    # -- index lifecycle ----------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Switch to the newest published index version if it changed.

        A published version that cannot be opened (a damaged pointer or files, another model)
        is refused while the version already loaded keeps being served; ``index_problem`` says
        why. With nothing loaded yet (start-up) the error is raised.
        """
        now = time.monotonic()
        if not force and not self._check_every_request and \
                now - self._last_check < self.settings.reload_check_seconds:
            return
        self._last_check = now
        try:
            version = self.store.current_version()
        except IndexCorrupt as exc:
            self._refuse(None, exc)
            return
        if version == self._loaded_version and not force:
            self._clear_problem()
            return
        if version is not None and version == self._refused_version and not force:
            return
        with self._lock:
            try:
                version = self.store.current_version()
            except IndexCorrupt as exc:
                self._refuse(None, exc)
                return
            if version == self._loaded_version and self._live.snapshot is not None:
                self._clear_problem()
                return
            if version is None:
                if self.settings.on_missing_index == "fail":
                    self._missing_index(self.settings)
                self._live = _Live(None, None)
                self._loaded_version = None
                return
            try:
                snapshot = self.store.open(self.embedder, version)
            except (IndexCorrupt, EmbeddingMismatch) as exc:
                self._refuse(version, exc)
                return
            self._live = _Live(snapshot, AskPipeline(
                snapshot, self.embedder, self.reader, self.decision_model, self.checker,
                self.generator, read_passages=self.settings.read_passages
                or int(self.decision_model.meta.get("read_passages", 5))))
            self._loaded_version = version
            self._clear_problem()
            logger.info("serving index version %s (%d documents, %d chunks)", version,
                        snapshot.document_count, snapshot.chunk_count)

    def _refuse(self, version: str | None, exc: GroundQAError) -> None:
        """Keep serving the loaded version instead of ``version``; raise when none is loaded."""
        if self._live.snapshot is None:
            raise exc
        with self._problem_lock:
            self._refused_version = version
            if self._problem is None or self._problem.message != exc.message:
                logger.warning("index %s refused, groundqa keeps serving %s: %s",
                               f"version {version}" if version else "pointer",
                               self._loaded_version, exc.message)
            self._problem = exc

    def _clear_problem(self) -> None:
        if self._problem is not None:
            with self._problem_lock:
                if self._problem is not None:
                    logger.info("index problem resolved; serving %s", self._loaded_version)
                self._problem = None
                self._refused_version = None

    @property
    def index_problem(self) -> GroundQAError | None:
        """Why the published index version is not the one served (None: it is)."""
        return self._problem

    def live(self) -> _Live:
        """The snapshot and pipeline one request must use throughout (never mixed)."""
        self.refresh()
        return self._live

    @property
    def ready(self) -> bool:
        """Whether an index version is loaded."""
        return self._live.snapshot is not None

    def warm_up(self) -> None:
        """Answer one throwaway question, so the models and language tables that load on first
        use are loaded before the first user waits on them (and before the server freezes its
        start-up heap, service/http/app.py). Nothing is recorded; an empty index skips it."""
        if not self.ready:
            return
        try:
            self.ask(AskRequest(question="What happened?"))
        except Exception as exc:  # noqa: BLE001 - best effort: the first request would retry
            logger.warning("warm-up question failed (%s: %s); models load on first use",
                           type(exc).__name__, exc)

    # -- questions ----------------------------------------------------------------------------
    def ask(self, request: AskRequest, *,
            on_passages: Callable[[list[PassageOut]], None] | None = None) -> AskResponse:
        """Answer a question with a short answer and cited quotes, or abstain with the nearest
        passages and the reason.

        ``on_passages`` is called with the retrieved passages as soon as they are known (the
        streaming routes send them before the answer is written).
        """
        started = time.perf_counter()
        question = clean_question(request.question, self.settings.max_question_chars)
        self._check_top_k(request.top_k)
        filters = to_filters(request.filters)
        live = self.live()
        response_id = f"ask-{uuid.uuid4().hex[:16]}"
        min_confidence = request.min_confidence if request.min_confidence is not None \
            else self.settings.min_confidence
        if live.pipeline is None:
            return self._empty_answer(response_id, question, on_passages, started)
        outcome = live.pipeline.ask(
            question, request.top_k, filters, min_confidence,
            on_passages=None if on_passages is None
            else lambda found: on_passages([self._passage_out(p) for p in found]),
            generator=self.generator)
        composed, decision = outcome.composed, outcome.decision
        timings = {k: _ms(v) for k, v in outcome.timings.items()}
        return AskResponse(
            id=response_id,
            question=question,
            answerable=decision.answerable,
            abstain_reason=decision.reason.value if decision.reason else None,
            answer=composed.answer,
            short_answer=composed.short_answer,
            confidence=round(decision.confidence, 4),
            answer_type=outcome.answer_type,
            sentences=composed.sentences,
            citations=composed.citations,
            conflicts=composed.conflicts,
            passages=[self._passage_out(p) for p in outcome.passages],
            timings_ms=Timings(**timings, total=_ms(time.perf_counter() - started)),
            index_version=live.snapshot.version if live.snapshot else None,
            generator=outcome.generator,
        )

    def _empty_answer(self, response_id: str, question: str,
                      on_passages: Callable[[list[PassageOut]], None] | None,
                      started: float) -> AskResponse:
        """The abstention when no index version is loaded."""
        if on_passages is not None:
            on_passages([])
        reason = AbstainReason.NO_RELEVANT_PASSAGES
        return AskResponse(
            id=response_id, question=question, answerable=False, abstain_reason=reason.value,
            answer=ABSTAIN_MESSAGES[reason], short_answer=None, confidence=0.0,
            answer_type=answer_type_of(question), sentences=[], citations=[], conflicts=[],
            passages=[], timings_ms=Timings(retrieve=0.0, select=0.0, compose=0.0, verify=0.0,
                                            total=_ms(time.perf_counter() - started)),
            index_version=None, generator="extractive")

    def _check_top_k(self, top_k: int) -> None:
        if not 1 <= top_k <= self.settings.max_top_k:
            raise InvalidRequest(f"top_k must be between 1 and {self.settings.max_top_k}")

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
        return IndexWriter(self.store, self.embedder, index_type=self.settings.index_type)

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


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


__all__ = ["QAService", "clean_question", "index_location", "to_filters"]
