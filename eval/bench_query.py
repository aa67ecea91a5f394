"""/v1/ask and /v1/search latency, in-process and over HTTP, at several concurrency levels.

Every pass is cold: each question gets a cache key it never had (``uncached``), so the query
embedding is computed in every request, as for a stream of new questions. The in-process
numbers call ``QAService`` directly; the HTTP numbers go through a real uvicorn server on
loopback, started by the benchmark. Per-stage figures come from ``AskResponse.timings_ms``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval.bench_common import (
    corpus_questions,
    load_average,
    load_corpus,
    machine,
    markdown_table,
    percentiles,
    rss_bytes,
    uncached,
)

Call = Callable[[str], dict[str, Any]]


def build_index(corpus: str, data_dir: Path, embedder_kind: str,
                limit: int | None = None) -> dict[str, Any]:
    """Ingest a corpus into ``data_dir`` (a no-op when it is already there); return counts."""
    from index.embedding import load_embedder
    from index.ingest import IndexWriter
    from index.store import IndexSnapshot

    documents = load_corpus(corpus, limit)
    embedder = load_embedder(embedder_kind)
    result = IndexWriter(data_dir, embedder).apply(documents)
    snapshot = IndexSnapshot.open(data_dir, embedder)
    return {"documents": snapshot.document_count, "chunks": snapshot.chunk_count,
            "reused": not result.added, "questions": corpus_questions(corpus, documents)}


def _timed_pass(call: Call, questions: Sequence[str], concurrency: int
                ) -> tuple[list[float], list[dict[str, Any]], float]:
    def one(question: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        body = call(question)
        return (time.perf_counter() - started) * 1000.0, body

    started = time.perf_counter()
    if concurrency == 1:
        results = [one(q) for q in questions]
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, questions))
    wall = time.perf_counter() - started
    return [r[0] for r in results], [r[1] for r in results], wall


def measure(ask: Call, search: Call, questions: Sequence[str], levels: Sequence[int],
            passes: int, first_round: int) -> list[dict[str, Any]]:
    """Cold passes of ask and search at each concurrency level."""
    runs = []
    round_number = first_round
    for level in levels:
        for route, call in (("ask", ask), ("search", search)):
            latencies: list[float] = []
            stages: dict[str, list[float]] = {}
            wall = 0.0
            load_before = load_average()
            for _ in range(passes):
                round_number += 1
                batch = [uncached(q, round_number) for q in questions]
                values, bodies, seconds = _timed_pass(call, batch, level)
                latencies += values
                wall += seconds
                for body in bodies:
                    for stage, value in (body.get("timings_ms") or {}).items():
                        stages.setdefault(stage, []).append(float(value))
            runs.append({"route": route, "concurrency": level,
                         "throughput_rps": len(latencies) / wall, **percentiles(latencies),
                         "stages_ms": {k: percentiles(v) for k, v in stages.items()}
                         if route == "ask" else {},
                         "load_average_1m": round((load_before + load_average()) / 2, 2)})
    return runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(data_dir: Path, embedder_kind: str, spinning: bool = False,
                extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """A uvicorn process serving ``data_dir`` (or what ``extra_env`` names) on loopback;
    yields (base URL, pid)."""
    import httpx

    port = _free_port()
    env = {**os.environ, "GROUNDQA_DATA_DIR": str(data_dir),
           "GROUNDQA_EMBEDDER": embedder_kind, "GROUNDQA_API_KEYS": "",
           "GROUNDQA_ONNX_SPINNING": "1" if spinning else "0", **(extra_env or {})}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.asgi:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the server exited: {log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready in 180 s")
            time.sleep(0.5)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _http_calls(base: str, max_connections: int) -> tuple[Call, Call, Any]:
    import httpx

    client = httpx.Client(base_url=base, timeout=120,
                          limits=httpx.Limits(max_connections=max_connections + 4))

    def ask(question: str) -> dict[str, Any]:
        response = client.post("/v1/ask", json={"question": question})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def search(question: str) -> dict[str, Any]:
        response = client.post("/v1/search", json={"query": question, "top_k": 5})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    return ask, search, client


def run_query_bench(corpora: Sequence[str] = ("demo", "bbc"), levels: Sequence[int] = (1, 8, 32),
                    modes: Sequence[str] = ("in-process", "http"), embedder_kind: str = "minilm",
                    passes: int = 2, work_dir: Path | None = None,
                    bbc_limit: int | None = None,
                    spinning: Sequence[bool] = (False,)) -> dict[str, Any]:
    """Latency figures for every corpus × mode × concurrency; indexes are built as needed.

    Over HTTP, one fresh server per ``spinning`` value (idle ONNX Runtime workers spin or
    sleep, ``GROUNDQA_ONNX_SPINNING``); in-process runs use the configured setting.
    """
    from service.config import Settings
    from service.core import QAService
    from service.schemas import AskRequest, SearchRequest

    work = work_dir or Path(tempfile.mkdtemp(prefix="groundqa-bench-query-"))
    report: dict[str, Any] = {"benchmark": "query", "embedder": embedder_kind,
                              "machine": machine(), "corpora": {}}
    for corpus in corpora:
        data_dir = work / f"{corpus}-{embedder_kind}"
        built = build_index(corpus, data_dir, embedder_kind,
                            limit=bbc_limit if corpus == "bbc" else None)
        questions = built.pop("questions")
        entry: dict[str, Any] = {**built, "data_dir": str(data_dir),
                                 "questions_per_pass": len(questions), "runs": []}
        if "in-process" in modes:
            service = QAService.from_settings(
                Settings(data_dir=data_dir, embedder=embedder_kind))  # type: ignore[arg-type]

            def ask(q: str, service: QAService = service) -> dict[str, Any]:
                return service.ask(AskRequest(question=q)).model_dump()

            def search(q: str, service: QAService = service) -> dict[str, Any]:
                return service.search(SearchRequest(query=q, top_k=5)).model_dump()

            for q in questions[:3]:  # warm code paths (not the cache: later keys are new)
                ask(q)
            entry["in_process_rss_bytes"] = rss_bytes()
            entry["runs"] += [{"mode": "in-process", **r}
                              for r in measure(ask, search, questions, levels, passes, 0)]
            del service
        for number, spin in enumerate(spinning if "http" in modes else ()):
            with http_server(data_dir, embedder_kind, spin) as (base, pid):
                http_ask, http_search, client = _http_calls(base, max(levels))
                for q in questions[:3]:
                    http_ask(q)
                entry["runs"] += [{"mode": "http", "spinning": spin, **r} for r in
                                  measure(http_ask, http_search, questions, levels, passes,
                                          100 * (number + 1))]
                entry["server_rss_bytes"] = rss_bytes(pid)
                client.close()
        report["corpora"][corpus] = entry
    return report


def _mode(run: dict[str, Any]) -> str:
    if "spinning" not in run:
        return str(run["mode"])
    return f"{run['mode']}, spinning {'on' if run['spinning'] else 'off'}"


def query_markdown(report: dict[str, Any]) -> str:
    """One latency table per corpus plus the per-stage split of in-process asks."""
    parts = []
    for corpus, entry in report["corpora"].items():
        parts.append(f"Query latency, {corpus} corpus ({entry['documents']} articles, "
                     f"{entry['chunks']} chunks), embedder {report['embedder']}, cold "
                     f"(uncached query embeddings), {entry['questions_per_pass']} questions "
                     "per pass:")
        rows = [[_mode(r), r["route"], r["concurrency"], r["n"], r["p50"], r["p95"], r["p99"],
                 r["throughput_rps"], r["load_average_1m"]] for r in entry["runs"]]
        parts.append(markdown_table(["mode", "route", "concurrency", "n", "p50 ms", "p95 ms",
                                     "p99 ms", "req/s", "load 1m"], rows))
        stage_rows = []
        for r in entry["runs"]:
            if r["route"] == "ask" and r["stages_ms"]:
                stage_rows.append([_mode(r), r["concurrency"]] + [
                    f"{r['stages_ms'][s]['p50']:.1f} / {r['stages_ms'][s]['p99']:.1f}"
                    if s in r["stages_ms"] else "–"
                    for s in ("retrieve", "select", "compose", "verify", "total")])
        if stage_rows:
            parts.append("Per stage, /v1/ask (server-side timings_ms, p50 / p99 ms):")
            parts.append(markdown_table(["mode", "concurrency", "retrieve", "select", "compose",
                                         "verify", "total"], stage_rows))
    return "\n\n".join(parts)
