"""The storage contract: what a store must offer ingest, retrieval and the service.

A store keeps documents, their chunks, the sentences inside the chunks, a vector per chunk and
per sentence, and a lexical (BM25-like) index over chunk texts. Readers work on a ``Snapshot``:
one immutable version that never changes under them. Writers hand a ``ChangeSet`` (documents
to remove, documents to add with their chunks and vectors) to a ``Transaction``, which makes it
the new live version all at once or not at all.

Chunks are named by an integer ``row_id``, stable for as long as the chunk exists; sentences by
a ``row`` inside one snapshot. ``embedded.py`` implements this with files on one machine
(FAISS + bm25s + SQLite, versions switched by renaming).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from corpus.errors import EmbeddingMismatch
from corpus.loader import Document
from index.chunking import Chunk, ChunkingConfig
from index.embedding import Embedder

# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some outlets, a publication date range or some documents."""

    outlets: tuple[str, ...] = ()
    published_from: str | None = None  # ISO date, inclusive
    published_to: str | None = None
    doc_ids: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when nothing is filtered."""
        return not (self.outlets or self.published_from or self.published_to or self.doc_ids)


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk with its document metadata."""

    row_id: int
    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str
    token_count: int
    title: str
    outlet: str
    published: str | None


@dataclass(frozen=True)
class SentenceRecord:
    """A stored sentence span and the row of its vector."""

    row: int
    doc_id: str
    chunk_row: int
    start: int
    end: int


@dataclass(frozen=True)
class ChangeSet:
    """Everything one write changes, already chunked and embedded.

    ``add`` holds each new document with its chunks; ``chunk_vectors[i]`` and
    ``sentence_vectors[i]`` (one row per sentence of the chunk) belong to the i-th chunk of
    ``add`` in order. A document in both ``delete`` and ``add`` is replaced.
    """

    delete: frozenset[str]
    add: Sequence[tuple[Document, Sequence[Chunk]]]
    chunk_vectors: np.ndarray
    sentence_vectors: Sequence[np.ndarray]
    chunking: ChunkingConfig


# ---------------------------------------------------------------------------------------------
# Reading


class DocumentReader(Protocol):
    """Documents: metadata for listing and filtering, full text on demand."""

    @property
    def document_count(self) -> int:
        """Number of documents."""
        ...

    def documents(self) -> list[dict[str, Any]]:
        """Metadata of every document (no text), ordered by id."""
        ...

    def document(self, doc_id: str) -> dict[str, Any]:
        """Metadata and full cleaned text of one document; ``DocumentNotFound`` if absent."""
        ...

    def document_meta(self, doc_id: str) -> dict[str, Any]:
        """Metadata of one document, without its text; ``DocumentNotFound`` if absent."""
        ...

    def has_document(self, doc_id: str) -> bool:
        """Whether ``doc_id`` is stored."""
        ...


class ChunkReader(Protocol):
    """Chunks by row id, with their stored vectors."""

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        ...

    def chunk(self, row_id: int) -> ChunkRecord:
        """A chunk by its row id."""
        ...

    def chunk_rows(self) -> list[int]:
        """All chunk row ids."""
        ...

    def chunk_vectors(self, row_ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of chunks, one row each, in the order asked."""
        ...


class SentenceReader(Protocol):
    """Sentences inside chunks (each sentence of a document once, in its first chunk)."""

    def chunk_sentences(self, row_id: int) -> list[SentenceRecord]:
        """Sentences whose vectors were computed in this chunk."""
        ...


class VectorSearch(Protocol):
    """Nearest chunks to a query vector, restricted by filters."""

    def vector_search(self, query_vector: np.ndarray, limit: int,
                      filters: Filters) -> list[int]:
        """Row ids of up to ``limit`` chunks passing ``filters``, highest inner product first."""
        ...


class LexicalHits(Protocol):
    """The lexical side of one query: the best rows, and the score of any row."""

    @property
    def rows(self) -> list[int]:
        """Up to the limit asked, rows passing the filters with a positive score, best first."""
        ...

    def scores(self, row_ids: Sequence[int]) -> np.ndarray:
        """Float32 lexical score of each row for the query (0 where no query term occurs)."""
        ...


class LexicalSearch(Protocol):
    """Keyword (BM25-like) search over chunk texts, restricted by filters."""

    def lexical_search(self, query: str, limit: int, filters: Filters) -> LexicalHits:
        """Score chunks for ``query``; ``rows`` of the result are the ``limit`` best."""
        ...


class Snapshot(DocumentReader, ChunkReader, SentenceReader, VectorSearch, LexicalSearch,
               Protocol):
    """One immutable version of the index, safe to share between threads."""

    @property
    def version(self) -> str:
        """Name of this version."""
        ...

    @property
    def manifest(self) -> dict[str, Any]:
        """What the version records: version, created_at, model, dimension, counts, chunking."""
        ...


# ---------------------------------------------------------------------------------------------
# Versions and writing


class Transaction(Protocol):
    """A write in progress: the only writer until it ends, and the version it started from."""

    @property
    def base(self) -> Snapshot | None:
        """The live version when the transaction began (None: nothing was ever written)."""
        ...

    def commit(self, change: ChangeSet, timings: dict[str, float]) -> str:
        """Make ``base`` minus ``change.delete`` plus ``change.add`` the live version, atomically.

        Returns the new version's name; readers see either the old version or the new one,
        never a mix. Called at most once per transaction; leaving the transaction without it
        changes nothing. ``timings`` receives the seconds spent per stage, for benchmarks.
        """
        ...


class Store(Protocol):
    """Where an index lives: its live version, snapshots for reading, transactions for writing."""

    def current_version(self) -> str | None:
        """Name of the live version, or None when nothing was ever written."""
        ...

    def open(self, embedder: Embedder | None = None, version: str | None = None) -> Snapshot:
        """A snapshot of the live (or a named) version, checked against ``embedder``'s model.

        Raises ``IndexNotFound``, ``IndexCorrupt`` or ``EmbeddingMismatch``.
        """
        ...

    def transaction(self, embedder: Embedder,
                    wait_seconds: float = 0.0) -> AbstractContextManager[Transaction]:
        """Begin the one write at a time; ``IndexBusy`` if another outlasts ``wait_seconds``."""
        ...


def check_model(recorded: dict[str, Any], embedder: Embedder, where: str,
                fresh_place: str) -> None:
    """Raise ``EmbeddingMismatch`` unless the index ``where`` (its ``recorded`` model and
    dimension) was built with ``embedder``'s model; the message says to rebuild it in
    ``fresh_place`` otherwise."""
    if recorded.get("model") != embedder.name or recorded.get("dimension") != embedder.dimension:
        raise EmbeddingMismatch(
            f"the index in {where} was built with {recorded.get('model')} "
            f"({recorded.get('dimension')}-d) but this process embeds with {embedder.name} "
            f"({embedder.dimension}-d); use the same model, or rebuild the index in "
            f"{fresh_place}")
