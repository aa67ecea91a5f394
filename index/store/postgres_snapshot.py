"""A version of the PostgreSQL store's index: documents, chunks, sentences, and the vector and
lexical searches of ``contract.Snapshot``, every query pinned to the version by the rows'
``added_in`` / ``removed_in`` columns (see ``postgres.py`` for the tables and how writes work).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from corpus.errors import DocumentNotFound
from index.lexical import BM25_B, BM25_K1, tokenize
from index.store.contract import ChunkRecord, Filters, SentenceRecord

if TYPE_CHECKING:
    from index.store.postgres import PostgresStore

CACHED_CHUNKS = 50_000
MIN_EF_SEARCH = 40
MAX_EF_SEARCH = 1000
# A filter keeping at most this many chunks is searched exactly (a scan of the filtered rows);
# above it the graph is searched and the rows failing the filter dropped. `groundqa bench
# pgvector` (50k MiniLM vectors of SciFact text, README "Running past one machine"): exact
# took 1.4 ms p50 over 500 rows and 32.5 ms over 5,000, the filtered graph 15-19 ms; the two
# cross near 2,000 rows.
EXACT_FILTER_ROWS = 2_000

_DOC_COLUMNS = ("doc_id", "title", "outlet", "published", "published_start", "published_end",
                "source", "inferred", "content_hash", "length", "ingested_at")
_DOC_SELECT = ("doc_id, title, outlet, published, published_start, published_end, source, "
               "inferred, content_hash, length(text), ingested_at")
_CHUNK_SELECT = ("row_id, chunk_id, doc_id, start_offset, end_offset, text, token_count, title, "
                 "outlet, published")


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


class ChunkCache:
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
