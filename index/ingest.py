"""Ingest: documents → chunks → vectors → a store, as one atomic change.

``IndexWriter.apply`` decides what a batch of additions and deletions changes (a document whose
content hash is unchanged is skipped), chunks and embeds everything new before touching the
store (while another writer holds it, if one does), and hands the result to the store's
transaction as one ``ChangeSet``.
"""

from __future__ import annotations

import os
import queue
import threading
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
        """Chunk ``documents`` and embed their chunks and sentences, chunking overlapped with
        embedding.

        A background thread chunks document after document while this one embeds: ONNX
        Runtime and torch release the GIL inside the model, and on 300 news articles the
        chunking (about a tenth of an ingest) then disappears behind the model (one measured
        run: 28.8 s for both against 3.5 s + 28.9 s one after the other). Each batch is the
        longest ``EMBED_BATCH`` chunks known when it starts, so batches pad to lengths close to
        their own as with a sort of the whole ingest. Adds to ``timings``: ``chunk`` (the
        chunking thread's time), ``chunk_wait`` (time spent waiting for it), ``embed`` (time
        in the model calls).
        """
        results: list[list[Chunk] | None] = [None] * len(documents)
        arrivals: queue.Queue[tuple[int, list[Chunk]] | BaseException | None] = queue.Queue()
        stop = threading.Event()
        chunk_seconds = [0.0]

        def chunk_all() -> None:
            try:
                for index, doc in enumerate(documents):
                    if stop.is_set():
                        return
                    t0 = time.perf_counter()
                    chunks = chunk_document(doc.doc_id, doc.text, self.chunking,
                                            self.embedder.count_word_pieces)
                    chunk_seconds[0] += time.perf_counter() - t0
                    arrivals.put((index, chunks))
                arrivals.put(None)
            except BaseException as exc:  # handed to the embedding thread, which raises it
                arrivals.put(exc)

        dim = self.embedder.dimension
        chunk_vectors: dict[tuple[int, int], np.ndarray] = {}
        sentence_vectors: dict[tuple[int, int], np.ndarray] = {}
        ready: list[tuple[int, Chunk]] = []
        known = embedded = 0
        finished = False
        waited = embedding = 0.0
        worker = threading.Thread(target=chunk_all, name="groundqa-chunking", daemon=True)
        worker.start()
        try:
            while not finished or ready:
                t0 = time.perf_counter()
                while not finished:  # wait for a batch's worth (or the end), take what is there
                    try:
                        item = arrivals.get(block=len(ready) < EMBED_BATCH)
                    except queue.Empty:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if item is None:
                        finished = True
                    else:
                        results[item[0]] = item[1]
                        ready.extend((item[0], chunk) for chunk in item[1])
                        known += len(item[1])
                waited += time.perf_counter() - t0
                if not ready:
                    continue
                ready.sort(key=lambda pair: -pair[1].token_count)
                batch, ready = ready[:EMBED_BATCH], ready[EMBED_BATCH:]
                t0 = time.perf_counter()
                outputs = self.embedder.embed_with_spans(
                    [chunk.text for _, chunk in batch],
                    [[(s.start - c.start, s.end - c.start) for s in c.sentences]
                     for _, c in batch])
                embedding += time.perf_counter() - t0
                for (index, chunk), vectors in zip(batch, outputs, strict=True):
                    chunk_vectors[(index, chunk.ordinal)] = vectors.text
                    sentence_vectors[(index, chunk.ordinal)] = vectors.spans
                embedded += len(batch)
                if progress is not None:
                    progress(embedded, known)
        finally:
            stop.set()
            worker.join()
        timings["chunk"] = timings.get("chunk", 0.0) + chunk_seconds[0]
        timings["chunk_wait"] = timings.get("chunk_wait", 0.0) + waited
        timings["embed"] = timings.get("embed", 0.0) + embedding
        out: dict[tuple[str, str], _Embedded] = {}
        for index, doc in enumerate(documents):
            chunks = results[index] or []
            keys = [(index, chunk.ordinal) for chunk in chunks]
            out[(doc.doc_id, doc.content_hash)] = _Embedded(
                chunks,
                np.stack([chunk_vectors[k] for k in keys]) if keys
                else np.zeros((0, dim), np.float32),
                [sentence_vectors[k] for k in keys])
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
