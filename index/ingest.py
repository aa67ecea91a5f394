"""Ingest: documents → chunks → vectors → a store, as one atomic change.

``IndexWriter.apply`` decides what a batch of additions and deletions changes (a document whose
content hash is unchanged is skipped), chunks and embeds everything new before touching the
store (while another writer holds it, if one does), and hands the result to the store's
transaction as one ``ChangeSet``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus.errors import DocumentNotFound, GroundQAError, IndexBusy, IndexNotFound
from corpus.loader import Document
from index.chunking import Chunk, ChunkingConfig, chunk_document
from index.embedding import Embedder
from index.store.contract import ChangeSet, Snapshot, Store, Transaction
from index.store.embedded import EmbeddedStore

EMBED_BATCH = 64


@dataclass
class _Embedded:
    """One document's chunks with their vectors and their sentences' vectors."""

    chunks: Sequence[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: list[np.ndarray]


@dataclass
class IngestResult:
    """What an ingest changed."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    version: str | None = None
    chunks_embedded: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class IndexWriter:
    """Applies document additions, replacements and deletions as a new index version."""

    def __init__(self, data_dir: Path | str | Store, embedder: Embedder,
                 chunking: ChunkingConfig | None = None, index_type: str = "auto") -> None:
        """Write into ``data_dir`` (an embedded store there) or into any ``Store``.

        ``index_type`` (flat, hnsw or auto) applies to the embedded store only.
        """
        self.store: Store = (EmbeddedStore(Path(data_dir), index_type)
                             if isinstance(data_dir, str | os.PathLike) else data_dir)
        self.embedder = embedder
        self.chunking = chunking or ChunkingConfig()
        self.index_type = index_type

    def apply(
        self,
        add: Sequence[Document] = (),
        delete: Sequence[str] = (),
        progress: Callable[[int, int], None] | None = None,
        wait_seconds: float = 0.0,
        fail_after_embedding: Callable[[], None] | None = None,
    ) -> IngestResult:
        """Write a new version with ``add`` upserted and ``delete`` removed, then publish it.

        Unchanged documents (same content hash) are skipped; if nothing changes no version is
        written. When another writer holds the index and ``wait_seconds`` allows waiting, the
        documents are chunked and embedded while it works (planned against the live version),
        so that writers on several machines embed in parallel and only write one at a time;
        under the lock the plan is made again and anything the other writer changed meanwhile
        is embedded then. ``fail_after_embedding`` is a test seam to simulate a crash mid-write.
        """
        ahead: dict[tuple[str, str], _Embedded] = {}
        timings: dict[str, float] = {}
        if wait_seconds > 0:
            with ExitStack() as stack:
                try:
                    transaction = stack.enter_context(
                        self.store.transaction(self.embedder, 0.0))
                except IndexBusy:
                    pass
                else:
                    return self._apply(transaction, add, delete, progress,
                                       fail_after_embedding, ahead, timings)
            t0 = time.perf_counter()
            ahead = self._embed_ahead(add, progress, timings)
            timings["ahead"] = time.perf_counter() - t0  # chunk + embed, outside the lock
        with self.store.transaction(self.embedder, wait_seconds) as transaction:
            return self._apply(transaction, add, delete, progress, fail_after_embedding,
                               ahead, timings)

    def _embed_ahead(self, add: Sequence[Document],
                     progress: Callable[[int, int], None] | None, timings: dict[str, float]
                     ) -> dict[tuple[str, str], _Embedded]:
        """Chunks and vectors of the documents the live version lacks, keyed by (doc_id,
        content hash); nothing when the live version cannot be read (the write under the lock
        then reports why)."""
        try:
            live: Snapshot | None = self.store.open(self.embedder)
        except IndexNotFound:
            live = None
        except GroundQAError:
            return {}
        _, to_add = _plan(live, add, (), IngestResult())
        del live
        return self._chunk_and_embed(to_add, progress, timings)

    def _chunk_and_embed(self, documents: Sequence[Document],
                         progress: Callable[[int, int], None] | None, timings: dict[str, float]
                         ) -> dict[tuple[str, str], _Embedded]:
        """Chunk ``documents`` and embed their chunks and sentences, all in one pass; adds the
        seconds spent to ``timings``' ``chunk`` and ``embed``."""
        t0 = time.perf_counter()
        chunked = [(doc, chunk_document(doc.doc_id, doc.text, self.chunking,
                                        self.embedder.count_word_pieces)) for doc in documents]
        flat = [c for _, chunks in chunked for c in chunks]
        t1 = time.perf_counter()
        chunk_vectors, sentence_vectors = self._embed(flat, progress)
        timings["chunk"] = timings.get("chunk", 0.0) + (t1 - t0)
        timings["embed"] = timings.get("embed", 0.0) + (time.perf_counter() - t1)
        out: dict[tuple[str, str], _Embedded] = {}
        begin = 0
        for doc, chunks in chunked:
            end = begin + len(chunks)
            out[(doc.doc_id, doc.content_hash)] = _Embedded(
                chunks, chunk_vectors[begin:end], sentence_vectors[begin:end])
            begin = end
        return out

    def _apply(self, transaction: Transaction, add: Sequence[Document], delete: Sequence[str],
               progress: Callable[[int, int], None] | None,
               fail_after_embedding: Callable[[], None] | None,
               ahead: dict[tuple[str, str], _Embedded],
               timings: dict[str, float]) -> IngestResult:
        started = time.perf_counter()
        result = IngestResult(timings=dict(timings))
        old = transaction.base
        to_delete, to_add = _plan(old, add, delete, result)
        if not to_add and not to_delete:
            result.version = old.version if old is not None else None
            return result

        # Chunk and embed everything new (and not embedded ahead) before touching the store.
        missing = [doc for doc in to_add if (doc.doc_id, doc.content_hash) not in ahead]
        embedded = {**ahead, **self._chunk_and_embed(missing, progress, result.timings)}
        parts = [embedded[(doc.doc_id, doc.content_hash)] for doc in to_add]
        result.chunks_embedded = sum(len(part.chunks) for part in parts)
        if fail_after_embedding is not None:
            fail_after_embedding()

        t0 = time.perf_counter()
        dim = self.embedder.dimension
        change = ChangeSet(
            delete=frozenset(to_delete),
            add=[(doc, part.chunks) for doc, part in zip(to_add, parts, strict=True)],
            chunk_vectors=np.concatenate([part.chunk_vectors for part in parts])
            if parts else np.zeros((0, dim), np.float32),
            sentence_vectors=[v for part in parts for v in part.sentence_vectors],
            chunking=self.chunking)
        result.version = transaction.commit(change, result.timings)
        result.timings["write"] = time.perf_counter() - t0
        result.timings["total"] = time.perf_counter() - started
        return result

    def _embed(self, chunks: Sequence[Chunk],
               progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of every chunk and of the sentences inside it, in the order of ``chunks``.

        Chunks are embedded longest first across the whole ingest, not only inside one batch,
        so that a batch pads to lengths close to its own (``groundqa bench ingest`` measures it).
        """
        dim = self.embedder.dimension
        chunk_vectors = np.zeros((len(chunks), dim), np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(chunks)
        order = sorted(range(len(chunks)), key=lambda i: -chunks[i].token_count)
        for begin in range(0, len(order), EMBED_BATCH):
            rows = order[begin : begin + EMBED_BATCH]
            batch = [chunks[i] for i in rows]
            spans = [[(s.start - c.start, s.end - c.start) for s in c.sentences] for c in batch]
            outputs = self.embedder.embed_with_spans([c.text for c in batch], spans)
            for row, out in zip(rows, outputs, strict=True):
                chunk_vectors[row] = out.text
                sentence_vectors[row] = out.spans
            if progress is not None:
                progress(min(begin + EMBED_BATCH, len(chunks)), len(chunks))
        return chunk_vectors, sentence_vectors

def _plan(old: Snapshot | None, add: Sequence[Document], delete: Sequence[str],
          result: IngestResult) -> tuple[set[str], list[Document]]:
    """Documents to remove and to (re)write; fills ``result``'s added/replaced/... lists."""
    missing = [d for d in delete if old is None or not old.has_document(d)]
    if missing:
        raise DocumentNotFound(f"no document with id {missing[0]!r}")
    to_delete = set(delete)
    to_add: list[Document] = []
    seen: set[str] = set()
    for doc in add:
        if doc.doc_id in seen:
            continue
        seen.add(doc.doc_id)
        if old is not None and old.has_document(doc.doc_id):
            same = old.document_meta(doc.doc_id)["content_hash"] == doc.content_hash
            if same and doc.doc_id not in to_delete:
                result.unchanged.append(doc.doc_id)
                continue
            result.replaced.append(doc.doc_id)
            to_delete.add(doc.doc_id)
        else:
            result.added.append(doc.doc_id)
        to_add.append(doc)
    result.deleted = [d for d in delete if d not in seen]
    return to_delete, to_add
