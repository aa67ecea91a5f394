"""Several processes on one PostgreSQL database: ask throughput with 1 and 2 API replicas, and
ingest rate with 1 and 2 ingest processes.

* Ingest: the same articles go into two fresh databases, once by one ``IndexWriter`` process,
  once split between two processes started together. Each process is pinned to a core of its
  own and embeds on one ONNX Runtime thread, as if each had a one-core machine to itself, so
  the second figure shows what the writers' coordination allows (one writes while the other
  embeds) rather than how two processes share this machine's cores. Reported: wall time and
  articles per second.
* Ask: real ``uvicorn`` servers on the first database, ``/v1/ask`` at a fixed total
  concurrency, sent to one server or split evenly between two. On one machine the replicas
  share its cores, so the second figure is bounded by the cores, not by the database.

``groundqa bench replicas [--database-url URL]``: without a URL a throw-away PostgreSQL is
started with pgserver.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from eval.bench_common import corpus_questions, load_average, load_corpus, machine, markdown_table


def _new_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    base, _, query = admin_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def ingest_part(url: str, corpus: str, limit: int, part: int, parts: int) -> float:
    """Ingest every ``parts``-th article of the corpus, from the ``part``-th; seconds taken."""
    from index.embedding.onnx import OnnxEmbedder
    from index.ingest import IndexWriter
    from index.store.postgres import PostgresStore

    if hasattr(os, "sched_setaffinity"):  # one core each, as on machines of their own
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[part % len(cores)]})
    documents = load_corpus(corpus, limit)[part::parts]
    embedder = OnnxEmbedder(threads=1)
    store = PostgresStore(url)
    started = time.perf_counter()
    try:
        IndexWriter(store, embedder).apply(documents, wait_seconds=3600.0)
    finally:
        store.close()
    return time.perf_counter() - started


def _ingest(url: str, corpus: str, limit: int, parts: int) -> dict[str, Any]:
    """Wall time of ``parts`` ingest processes started together over the corpus."""
    load_before = load_average()
    started = time.perf_counter()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "eval.bench_replicas", "ingest-part", url, corpus, str(limit),
         str(part), str(parts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for part in range(parts)]
    own = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"an ingest process failed: {err.strip()[-2000:]}")
        own.append(float(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    return {"processes": parts, "articles": limit, "wall_s": wall,
            "articles_per_s": limit / wall, "process_s": own,
            "load_average_1m": round((load_before + load_average()) / 2, 2)}


def _asks(urls: list[str], questions: list[str], requests: int, concurrency: int
          ) -> dict[str, Any]:
    """``requests`` asks at ``concurrency`` in total, split evenly between ``urls``."""
    from eval.load import run_load

    async def together() -> list[Any]:
        share = [requests // len(urls) + (i < requests % len(urls)) for i in range(len(urls))]
        return await asyncio.gather(*(
            run_load(url, count, max(1, concurrency // len(urls)), questions)
            for url, count in zip(urls, share, strict=True)))

    load_before = load_average()
    started = time.perf_counter()
    reports = asyncio.run(together())
    wall = time.perf_counter() - started
    errors = sum(r.errors for r in reports)
    return {"replicas": len(urls), "requests": requests, "concurrency": concurrency,
            "errors": errors, "wall_s": wall, "throughput_rps": requests / wall,
            "p50_ms": [r.latency_ms["p50"] for r in reports],
            "p99_ms": [r.latency_ms["p99"] for r in reports],
            "load_average_1m": round((load_before + load_average()) / 2, 2)}


def run_replicas_bench(database_url: str | None = None, corpus: str = "bbc", limit: int = 200,
                       requests: int = 200, concurrency: int = 8,
                       embedder_kind: str = "onnx") -> dict[str, Any]:
    """Ingest with 1 and 2 processes, then ask through 1 and 2 replicas; JSON-ready figures."""
    from eval.bench_query import http_server

    report: dict[str, Any] = {"benchmark": "replicas", "machine": machine(), "corpus": corpus,
                              "embedder": embedder_kind, "ingest": [], "ask": []}
    with ExitStack() as stack:
        if database_url is None:
            import pgserver

            server = pgserver.get_server(tempfile.mkdtemp(prefix="gq-bench-pg-"),
                                         cleanup_mode="delete")
            stack.callback(server.cleanup)
            database_url = server.get_uri()
        urls = {parts: _new_database(database_url, f"gq_bench_replicas_{parts}")
                for parts in (1, 2)}
        for parts, url in urls.items():
            report["ingest"].append(_ingest(url, corpus, limit, parts))
        questions = corpus_questions(corpus, load_corpus(corpus, limit))
        unused = Path(tempfile.mkdtemp(prefix="gq-bench-replicas-"))
        servers = [stack.enter_context(http_server(unused, embedder_kind,
                                                   extra_env={"GROUNDQA_DATABASE_URL": urls[1]}))
                   for _ in range(2)]
        bases = [base for base, _pid in servers]
        for base in bases:  # warm both
            _asks([base], questions, 4, 1)
        for replicas in (1, 2, 1, 2):  # interleaved, twice
            report["ask"].append(_asks(bases[:replicas], questions, requests, concurrency))
    report["load_average_at_end"] = round(load_average(), 2)
    return report


def replicas_markdown(report: dict[str, Any]) -> str:
    """Ingest and ask tables."""
    ingest = [[r["processes"], r["articles"], r["wall_s"], r["articles_per_s"],
               " / ".join(f"{s:.1f}" for s in r["process_s"]), r["load_average_1m"]]
              for r in report["ingest"]]
    ask = [[r["replicas"], r["requests"], r["concurrency"], r["errors"], r["throughput_rps"],
            " / ".join(f"{v:.0f}" for v in r["p50_ms"]), r["load_average_1m"]]
           for r in report["ask"]]
    return (f"One PostgreSQL database, {report['corpus']} articles, embedder "
            f"{report['embedder']}; {report['machine']['cores']} cores.\n\n"
            "Ingest (each process embeds on one ONNX Runtime thread):\n\n"
            + markdown_table(["processes", "articles", "wall s", "articles/s",
                              "each process s", "load 1m"], ingest)
            + "\n\n/v1/ask through one or two API replicas (total concurrency split evenly):"
            "\n\n" + markdown_table(["replicas", "requests", "concurrency", "errors", "req/s",
                                     "p50 ms per replica", "load 1m"], ask))


if __name__ == "__main__":  # the ingest processes the benchmark starts
    if len(sys.argv) == 7 and sys.argv[1] == "ingest-part":
        print(ingest_part(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                          int(sys.argv[6])))
    else:
        sys.exit("usage: python -m eval.bench_replicas ingest-part URL CORPUS LIMIT PART PARTS")
