"""The embedded store: files on one machine, one immutable directory per version.

The first implementation of ``contract.Store``. Each version directory (see ``layout.py`` for
the data directory around it) holds::

    manifest.json       model, dimension, index type, counts, chunking parameters
    meta.sqlite         documents, chunks and sentences
    vectors.faiss       IndexIDMap2 over chunk row ids (flat, or HNSW for large corpora)
    sentences.npy       sentence vectors, row i = sentences.row i
    bm25/               bm25s files aligned with chunk row ids

``IndexSnapshot`` reads one version (small corpora entirely from memory, SQLite being the
source of truth); ``embedded_writer.VersionWriter`` writes the next one.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from corpus.errors import (
    DocumentNotFound,
    IndexCorrupt,
    IndexNotFound,
    InsufficientStorage,
)
from index.embedding import Embedder
from index.lexical import LexicalIndex
from index.store.contract import ChunkRecord, Filters, SentenceRecord, check_model
from index.store.embedded_writer import FORMAT_VERSION, VersionWriter
from index.store.layout import CHECKSUM_ALGORITHM, DataDir, damaged_files

# A filtered search on an HNSW index scores the chunks that pass exactly (``ExactRows``) when
# they are few enough: the graph walk, which skips failing rows, then reaches too few of them.
# Set from `groundqa bench filtered --size 300000` (README, Performance; real MiniLM vectors,
# 200 real questions): the graph's recall@10 is 0.977 unfiltered, 0.772 with 1 % of the rows
# passing, 0.913 with 2 %, 0.951 with 3.3 % and back within 0.02 (0.967) at 10 %; an exact
# scan of up to 3,000 rows (0.91 ms) is no slower than the walk (1.26 ms). A scan chosen by
# share is capped at the size a flat index scans whole (HNSW_AUTO_THRESHOLD).
EXACT_FILTER_SHARE = 10_000 / 300_000
EXACT_FILTER_ROWS = 3_000
EXACT_BLOCK = 1024  # rows gathered and scored at a time


def _verify_checksums(manifest: dict[str, Any], path: Path, name: str, data_dir: Path) -> None:
    """Refuse a version whose files differ from what its writer recorded.

    Damage that still parses (bytes overwritten inside the vectors, a same-shaped random
    matrix, permuted rows) would otherwise change answers silently. Versions written before
    checksums existed carry none and are opened as before.
    """
    checksums = manifest.get("checksums")
    if checksums is None:
        return
    files = checksums.get("files") if isinstance(checksums, dict) else None
    if (not isinstance(files, dict) or checksums.get("algorithm") != CHECKSUM_ALGORITHM
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
        raise IndexCorrupt(f"index version {name} in {data_dir} has a damaged checksum list in "
                           "its manifest; rebuild it with `groundqa ingest` in a new data "
                           "directory")
    damaged = damaged_files(path, files)
    if damaged:
        raise IndexCorrupt(
            f"index version {name} in {data_dir} is damaged: the checksum of "
            f"{', '.join(damaged[:5])} does not match its manifest; point "
            f"{DataDir(data_dir).current_file} at an earlier good version or rebuild the index "
            "with `groundqa ingest` in a new data directory"
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
        # A filtered search resolves the same Filters for its vector and its lexical side.
        self._last_allowed: tuple[Filters, np.ndarray | None] | None = None
        self._exact = ExactRows.of(vectors)  # None for a flat index: its search is exact

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
        path = layout.checked_version_path(name)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise IndexCorrupt(
                f"index version {name} in {data_dir} is missing or has no manifest; point "
                f"{layout.current_file} at a good version in {layout.versions}, or re-run "
                "`groundqa ingest` into a new data directory"
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
            check_model(manifest, embedder, str(data_dir), "a new data directory")
        _verify_checksums(manifest, path, name, data_dir)
        try:
            vectors = faiss.read_index(str(path / "vectors.faiss"))
            _set_search_effort(vectors)
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

    # -- searching ------------------------------------------------------------------------
    def _allowed(self, filters: Filters) -> np.ndarray | None:
        last = self._last_allowed  # one read: other threads may replace it meanwhile
        if last is not None and last[0] == filters:
            return last[1]
        allowed = self.allowed_rows(filters)
        self._last_allowed = (filters, allowed)
        return allowed

    def vector_search(self, query_vector: np.ndarray, limit: int,
                      filters: Filters) -> list[int]:
        """Row ids of up to ``limit`` chunks passing ``filters``, highest inner product first."""
        _limit_query_threads()
        allowed = self._allowed(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        query = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        if allowed is not None and self._exact is not None and exact_is_better(
                len(allowed), int(self.vectors.ntotal)):
            return self._exact.search(query[0], allowed, limit)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(  # type: ignore[call-arg]
                sel=faiss.IDSelectorBatch(allowed))
        _, ids = self.vectors.search(query, limit, params=params)
        return [int(i) for i in ids[0] if i >= 0]

    def lexical_search(self, query: str, limit: int, filters: Filters) -> _LexicalHits:
        """BM25 scores of every chunk; ``rows`` are the ``limit`` best passing ``filters``."""
        lexical_all = self.lexical.scores(query)
        row_ids = self.lexical.row_ids
        allowed = self._allowed(filters)
        if allowed is not None:
            mask = np.isin(row_ids, allowed)
            lexical_masked = np.where(mask, lexical_all, -1.0)
        else:
            lexical_masked = lexical_all
        top = np.argsort(-lexical_masked, kind="stable")[:limit]
        rows = [int(row_ids[i]) for i in top if lexical_masked[i] > 0]
        return _LexicalHits(rows, lexical_all, self.lexical)


def exact_is_better(passing: int, total: int) -> bool:
    """Whether a filter keeping ``passing`` of ``total`` HNSW rows is searched exactly."""
    from index.store.embedded_writer import HNSW_AUTO_THRESHOLD

    return passing <= EXACT_FILTER_ROWS or (
        passing <= HNSW_AUTO_THRESHOLD and passing <= EXACT_FILTER_SHARE * total)


class ExactRows:
    """Exact inner-product search over a few rows of an HNSW index, read in place.

    A graph searched with a selective filter finds too few of the rows it may return (recall@10
    0.81 at 1M chunks with a filter keeping 1 %: README, Performance), so such a filter
    (``exact_is_better``) is answered by scoring exactly the rows that pass. The vectors are the
    graph's own stored copy (a view, no second copy in memory).
    """

    def __init__(self, vectors: faiss.Index, matrix: np.ndarray, ids: np.ndarray) -> None:
        self._vectors = vectors  # owns the memory ``matrix`` views
        self.matrix = matrix
        self._ids = ids  # row id of each stored position
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]

    @classmethod
    def of(cls, vectors: faiss.Index) -> ExactRows | None:
        """The exact path of an ``IndexIDMap2`` over HNSW; None for any other index."""
        inner = faiss.downcast_index(vectors.index) if hasattr(vectors, "index") else None
        if not isinstance(inner, faiss.IndexHNSWFlat) or not hasattr(vectors, "id_map"):
            return None
        storage = faiss.downcast_index(inner.storage)
        count, dimension = int(storage.ntotal), int(storage.d)
        if count == 0:
            return None
        matrix = faiss.rev_swig_ptr(storage.get_xb(), count * dimension)  # type: ignore[attr-defined]
        matrix = np.asarray(matrix).reshape(count, dimension)
        return cls(vectors, matrix, faiss.vector_to_array(vectors.id_map))

    def search(self, query: np.ndarray, allowed: np.ndarray, limit: int) -> list[int]:
        """Up to ``limit`` of the ``allowed`` row ids, highest inner product first."""
        if limit < 1 or not len(allowed):
            return []
        where = np.clip(np.searchsorted(self._sorted_ids, allowed), 0, len(self._sorted_ids) - 1)
        found = where[self._sorted_ids[where] == allowed]
        positions = np.sort(self._order[found])  # ascending positions read memory in order
        scores = np.empty(len(positions), np.float32)
        for begin in range(0, len(positions), EXACT_BLOCK):  # gathered rows stay in cache
            block = positions[begin:begin + EXACT_BLOCK]
            scores[begin:begin + len(block)] = self.matrix[block] @ query
        top = np.argsort(-scores, kind="stable")[:limit]
        return [int(self._ids[positions[i]]) for i in top]


@dataclass(frozen=True)
class _LexicalHits:
    """One query's BM25 scores over every chunk, and its best rows."""

    rows: list[int]
    all_scores: np.ndarray  # aligned with lexical.row_ids
    lexical: LexicalIndex

    def scores(self, row_ids: Sequence[int]) -> np.ndarray:
        """BM25 score of each row (0 where no query term occurs)."""
        return np.array([self.all_scores[self.lexical.position(r)] for r in row_ids],
                        dtype=np.float32)


_query_threads_limited = False


def _limit_query_threads() -> None:
    # One query is far too small to gain from OpenMP threads, whose start-up dominated query
    # time; concurrency comes from serving several requests at once. Set once, at the first
    # query, so that a process that only builds indexes keeps its threads.
    global _query_threads_limited
    if not _query_threads_limited:
        faiss.omp_set_num_threads(1)
        _query_threads_limited = True


_SQLITE_FULL = 13


def _is_disk_full(exc: BaseException) -> bool:
    """Whether an error means the file system (or the user's quota) has no room left."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or \
            "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class EmbeddedStore:
    """A data directory of immutable versions: the ``contract.Store`` on one machine."""

    def __init__(self, data_dir: Path, index_type: str = "auto") -> None:
        self.layout = DataDir(data_dir)
        self.index_type = index_type  # flat, hnsw, or auto (HNSW from HNSW_AUTO_THRESHOLD)

    def current_version(self) -> str | None:
        """Name of the live version, or None when nothing was ever ingested."""
        return self.layout.current_version()

    def open(self, embedder: Embedder | None = None,
             version: str | None = None) -> IndexSnapshot:
        """Open the live (or a named) version; check it matches ``embedder``."""
        return IndexSnapshot.open(self.layout.root, embedder, version)

    @contextmanager
    def transaction(self, embedder: Embedder,
                    wait_seconds: float = 0.0) -> Iterator[VersionWriter]:
        """Hold the writer lock and open the live version as the base of the next one."""
        try:
            with self.layout.writer_lock(wait_seconds):
                self.layout.versions.mkdir(parents=True, exist_ok=True)
                self.layout.remove_temporaries()
                current = self.layout.current_version()
                base = self.open(embedder, current) if current is not None else None
                yield VersionWriter(self.layout, embedder, base, self.index_type)
        except (OSError, sqlite3.OperationalError) as exc:
            # The writer has already removed its unfinished version; the live one is untouched.
            if not _is_disk_full(exc):
                raise
            raise InsufficientStorage(
                f"the disk holding {self.layout.root} is full ({exc}); no new index version "
                "was written and the live one is unchanged: free some space (a new version "
                "needs about as much as the live one, `groundqa index info` shows its size) "
                "and try again"
            ) from exc


def _set_search_effort(vectors: faiss.Index) -> None:
    """Give an HNSW index the search effort its size and graph need (versions written before
    too: a large graph built sparser keeps a higher effort)."""
    from index.store.embedded_writer import hnsw_ef_search

    inner = faiss.downcast_index(vectors.index) if hasattr(vectors, "index") else vectors
    if isinstance(inner, faiss.IndexHNSW):  # the graph's own build effort is saved with it
        inner.hnsw.efSearch = hnsw_ef_search(int(vectors.ntotal),
                                             int(inner.hnsw.efConstruction))
