"""Chunk vectors in pgvector HNSW (the PostgreSQL store) vs FAISS HNSW (the embedded store).

The vectors are those of ``groundqa bench scale --vectors real`` (eval/bench_vectors.py): real
MiniLM chunk vectors of BBC News, SciFact, NewsQA and SQuAD text, grown to the requested size
by moving each real vector a little towards another, with real questions as queries. Both
indexes are built with the settings their stores use at that size (FAISS: M=32 and the
efConstruction/efSearch of ``hnsw_ef_construction``/``hnsw_ef_search``; pgvector: m=16,
ef_construction=64, ef_search as the store sets it), and measured on:

* build time (FAISS on all cores; PostgreSQL one maintenance worker per core),
* single-query latency p50/p99 for the top 10, with no filter and with a filter keeping 10 %
  and 1 % of the vectors (an outlet), both through the graph and exactly (a scan of the filtered
  rows, which the PostgreSQL store uses for selective filters),
* recall@10 against exact search (numpy over the same vectors and filter),
* memory (FAISS: the index in RAM; PostgreSQL: the graph and table, which must stay in the
  buffer cache to answer at these speeds) and disk.

Run it with ``groundqa bench pgvector --size 100000`` (``--database-url`` to use a running
PostgreSQL; without it a throw-away one is started with pgserver).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench_common import load_average, machine, markdown_table, percentiles

DIMENSION = 384
OUTLETS = 100  # outlet i holds 1 % of the vectors; "10 %" is outlets 0-9
def exact_top(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None,
              k: int = 10) -> np.ndarray:
    """Ids of the true top ``k`` by inner product (restricted to ``allowed`` ids)."""
    ids = np.arange(len(vectors)) if allowed is None else allowed
    found = np.empty((len(queries), k), np.int64)
    for i, query in enumerate(queries):
        scores = vectors[ids] @ query if allowed is not None else vectors @ query
        top = np.argpartition(-scores, k)[:k]
        found[i] = ids[top[np.argsort(-scores[top])]]
    return found


def recall(found: Sequence[Sequence[int]], truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true top ``k`` that was found."""
    return float(np.mean([len(set(list(f)[:k]) & set(t[:k].tolist())) / k
                          for f, t in zip(found, truth, strict=True)]))


def _faiss_runs(vectors: np.ndarray, queries: np.ndarray, outlets: np.ndarray,
                filters: dict[str, np.ndarray | None], truth: dict[str, np.ndarray]
                ) -> dict[str, Any]:
    import faiss

    from index.store.embedded_writer import _new_faiss_index

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index: Any = _new_faiss_index(DIMENSION, "hnsw", len(vectors))  # the store's settings
    started = time.perf_counter()
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    build = time.perf_counter() - started
    size = len(faiss.serialize_index(index))
    graph: Any = faiss.downcast_index(index.index)
    settings = {"M": int(graph.hnsw.nb_neighbors(1)),
                "efConstruction": int(graph.hnsw.efConstruction),
                "efSearch": int(graph.hnsw.efSearch)}
    faiss.omp_set_num_threads(1)  # as the store serves queries
    searches: dict[str, Any] = {}
    for name, allowed in filters.items():
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(  # type: ignore[call-arg]
                sel=faiss.IDSelectorBatch(allowed))
        latencies, found = [], []
        for query in queries:
            t0 = time.perf_counter()
            _, ids = index.search(query[None, :], 10, params=params)
            latencies.append((time.perf_counter() - t0) * 1000)
            found.append([int(i) for i in ids[0] if i >= 0])
        searches[name] = {"path": "graph", **percentiles(latencies),
                          "recall@10": recall(found, truth[name])}
    del outlets
    return {"build_s": build, "memory_bytes": size, "disk_bytes": size, "settings": settings,
            "searches": searches}


def _pg_runs(url: str, vectors: np.ndarray, queries: np.ndarray, outlets: np.ndarray,
             filters: dict[str, np.ndarray | None], truth: dict[str, np.ndarray]
             ) -> dict[str, Any]:
    import psycopg
    from pgvector.psycopg import register_vector

    from index.store.postgres import HNSW_EF_CONSTRUCTION, HNSW_M
    from index.store.postgres_snapshot import MIN_EF_SEARCH

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS bench_chunks")
        conn.execute(f"CREATE TABLE bench_chunks (id BIGINT PRIMARY KEY, outlet_key TEXT NOT "
                     f"NULL, embedding VECTOR({DIMENSION}) NOT NULL)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                "COPY bench_chunks FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "vector"])
            for i in range(len(vectors)):
                copy.write_row([i, f"outlet-{outlets[i]}", vectors[i]])
        load = time.perf_counter() - started
        conn.execute("CREATE INDEX ON bench_chunks (outlet_key)")
        conn.execute("VACUUM ANALYZE bench_chunks")
        # The graph must fit in maintenance_work_mem or the build slows down many times
        # (pgvector's docs): ~2 KB per 384-d vector at m=16, with room to spare.
        conn.execute(f"SET maintenance_work_mem = '{max(1024, len(vectors) * 3 // 1024)}MB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 1) - 1)}")
        started = time.perf_counter()
        conn.execute(f"CREATE INDEX bench_chunks_hnsw ON bench_chunks USING hnsw (embedding "
                     f"vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = "
                     f"{HNSW_EF_CONSTRUCTION})")
        build = time.perf_counter() - started
        index_bytes = conn.execute(
            "SELECT pg_relation_size('bench_chunks_hnsw')").fetchone()[0]  # type: ignore[index]
        total_bytes = conn.execute(
            "SELECT pg_total_relation_size('bench_chunks')").fetchone()[0]  # type: ignore[index]
        searches: dict[str, Any] = {}
        for name, allowed in filters.items():
            where = "" if allowed is None else " WHERE outlet_key = ANY(%(outlets)s)"
            wanted = [] if allowed is None else [f"outlet-{o}" for o in
                                                 range(OUTLETS // 10 if name == "10%" else 1)]
            paths = ["graph"] if allowed is None else ["graph", "exact"]
            for path in paths:
                # The store asks for 100 candidates; ef_search as it sets it for that.
                ef = max(MIN_EF_SEARCH, 100 * (2 if allowed is None else 8))
                sql = (f"SELECT id FROM bench_chunks{where} ORDER BY embedding <#> %(q)s "
                       "LIMIT 10") if path == "graph" else (
                    f"WITH c AS MATERIALIZED (SELECT id, embedding FROM bench_chunks{where}) "
                    "SELECT id FROM c ORDER BY embedding <#> %(q)s LIMIT 10")
                latencies, found = [], []
                for query in queries:
                    t0 = time.perf_counter()
                    with conn.transaction():
                        conn.execute(f"SET LOCAL hnsw.ef_search = {min(ef, 1000)}")
                        rows = conn.execute(sql, {"q": query, "outlets": wanted}).fetchall()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    found.append([int(r[0]) for r in rows])
                searches[name if path == "graph" else f"{name} exact"] = {
                    "path": path, "ef_search": ef if path == "graph" else None,
                    **percentiles(latencies), "recall@10": recall(found, truth[name])}
        conn.execute("DROP TABLE bench_chunks")
    return {"load_s": load, "build_s": build, "memory_bytes": index_bytes,
            "disk_bytes": total_bytes, "searches": searches}


def run_pgvector_bench(size: int, datasets: Path, database_url: str | None = None,
                       queries: int = 200, work_dir: Path | None = None) -> dict[str, Any]:
    """Build both indexes over the same ``size`` vectors and measure them.

    The vectors are those of ``groundqa bench scale --vectors real`` (eval/bench_vectors.py):
    real MiniLM chunk vectors of BBC News, SciFact, NewsQA and SQuAD text, grown to ``size``,
    with real questions as queries; cached in ``work_dir``.
    """
    import tempfile

    from eval import bench_vectors

    report: dict[str, Any] = {"benchmark": "pgvector", "size": size, "dimension": DIMENSION,
                              "machine": machine()}
    started = time.perf_counter()
    base, question_vectors = bench_vectors.base_vectors(
        datasets, work_dir or Path(tempfile.mkdtemp(prefix="groundqa-bench-pgvector-")))
    vectors = bench_vectors.grow(base, size)
    probe = bench_vectors.sample_queries(question_vectors, queries)
    report["vectors"] = {"source": bench_vectors.describe(
        len(base), len(probe), ["BBC News", "SciFact", "NewsQA", "SQuAD"])}
    report["embed_s"] = time.perf_counter() - started
    outlets = np.random.default_rng(1).integers(0, OUTLETS, size)
    filters: dict[str, np.ndarray | None] = {
        "none": None,
        "10%": np.flatnonzero(outlets < OUTLETS // 10).astype(np.int64),
        "1%": np.flatnonzero(outlets == 0).astype(np.int64)}
    truth = {name: exact_top(vectors, probe, allowed) for name, allowed in filters.items()}
    report["faiss"] = _faiss_runs(vectors, probe, outlets, filters, truth)
    report["load_average_after_faiss"] = round(load_average(), 2)
    server = None
    if database_url is None:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="gq-bench-pg-"),
                                     cleanup_mode="delete")
        database_url = server.get_uri()
    try:
        report["pgvector"] = _pg_runs(database_url, vectors, probe, outlets, filters, truth)
    finally:
        if server is not None:
            server.cleanup()
    report["load_average_at_end"] = round(load_average(), 2)
    return report


def pgvector_markdown(report: dict[str, Any]) -> str:
    """Build, size and search tables for both indexes."""
    mib = 1024 * 1024
    faiss_run, pg_run = report["faiss"], report["pgvector"]
    lines = [f"pgvector HNSW vs FAISS HNSW, {report['size']:,} × {report['dimension']}-d "
             f"({report['vectors']['source']}); load "
             f"{report['machine']['load_average_1m_at_start']} at start, "
             f"{report['load_average_at_end']} at end", "",
             markdown_table(["index", "build s", "memory MiB", "disk MiB"], [
                 ["FAISS HNSW (" + ", ".join(f"{k}={v}" for k, v in
                                             faiss_run.get("settings", {}).items()) + ")",
                  faiss_run["build_s"],
                  faiss_run["memory_bytes"] / mib, faiss_run["disk_bytes"] / mib],
                 ["pgvector HNSW (m=16, efc=64)", pg_run["build_s"],
                  pg_run["memory_bytes"] / mib, pg_run["disk_bytes"] / mib]]), ""]
    rows = []
    for label, run in (("FAISS", faiss_run), ("pgvector", pg_run)):
        for name, search in run["searches"].items():
            rows.append([label, name, search["path"], search["p50"], search["p99"],
                         search["recall@10"]])
    lines.append(markdown_table(["index", "filter", "path", "p50 ms", "p99 ms", "recall@10"],
                                rows))
    return "\n".join(lines)
