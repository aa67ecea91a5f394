"""Latency benchmark for /v1/ask and /v1/search: in-process or over HTTP, at some concurrency.

A program, not a test: it prints a table and writes JSON. Questions come from a question file;
the first pass over them is "cold" (query embeddings not cached), later passes are "warm".
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "mean": float("nan")}
    array = np.asarray(values)
    return {"n": len(values), "p50": float(np.percentile(array, 50)),
            "p95": float(np.percentile(array, 95)), "p99": float(np.percentile(array, 99)),
            "mean": float(statistics.fmean(values))}


def _run(call: Callable[[str], dict[str, Any]], questions: list[str],
         concurrency: int) -> tuple[list[float], list[dict[str, Any]], float]:
    latencies: list[float] = []
    bodies: list[dict[str, Any]] = []

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
    for latency, body in results:
        latencies.append(latency)
        bodies.append(body)
    return latencies, bodies, wall


def run_latency_bench(questions_path: Path, data_dir: Path | None = None, url: str | None = None,
                      concurrency: tuple[int, ...] = (1,), repeats: int = 3,
                      report_path: Path | None = None, api_key: str | None = None
                      ) -> dict[str, Any]:
    """Measure /v1/ask and /v1/search latency; returns (and optionally writes) the figures."""
    questions = [json.loads(line)["question"] for line in questions_path.read_text().splitlines()
                 if line.strip()]
    if url:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.Client(base_url=url, timeout=120, headers=headers,
                              limits=httpx.Limits(max_connections=max(concurrency) + 4))

        def ask(q: str) -> dict[str, Any]:
            response = client.post("/v1/ask", json={"question": q})
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]

        def search(q: str) -> dict[str, Any]:
            response = client.post("/v1/search", json={"query": q, "top_k": 5})
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]
        mode = f"http {url}"
    else:
        from service.config import Settings
        from service.core import QAService
        from service.schemas import AskRequest, SearchRequest

        settings = Settings(data_dir=data_dir) if data_dir else Settings()
        service = QAService.from_settings(settings)

        def ask(q: str) -> dict[str, Any]:
            return service.ask(AskRequest(question=q)).model_dump()

        def search(q: str) -> dict[str, Any]:
            return service.search(SearchRequest(query=q, top_k=5)).model_dump()
        mode = "in-process"

    results: dict[str, Any] = {"mode": mode, "questions": len(questions), "runs": []}
    # Cold pass: every question once, query embeddings not yet cached.
    cold, bodies, _ = _run(ask, questions, 1)
    stages: dict[str, list[float]] = {}
    for body in bodies:
        for stage, value in body["timings_ms"].items():
            stages.setdefault(stage, []).append(value)
    results["cold_ask"] = _percentiles(cold)
    results["cold_stages_ms"] = {k: _percentiles(v) for k, v in stages.items()}
    for level in concurrency:
        for route, call in (("ask", ask), ("search", search)):
            latencies, _, wall = _run(call, questions * repeats, level)
            results["runs"].append({"route": route, "concurrency": level,
                                    "throughput_rps": len(latencies) / wall,
                                    **_percentiles(latencies)})
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(results, indent=2))
    return results


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of the figures."""
    lines = [f"Latency ({results['mode']}, {results['questions']} questions)", "",
             "| run | concurrency | n | p50 ms | p95 ms | p99 ms | req/s |",
             "|---|---|---|---|---|---|---|"]
    cold = results["cold_ask"]
    lines.append(f"| ask, cold (uncached query embedding) | 1 | {cold['n']} | {cold['p50']:.1f} | "
                 f"{cold['p95']:.1f} | {cold['p99']:.1f} | |")
    for run in results["runs"]:
        lines.append(f"| {run['route']}, warm | {run['concurrency']} | {run['n']} | "
                     f"{run['p50']:.1f} | {run['p95']:.1f} | {run['p99']:.1f} | "
                     f"{run['throughput_rps']:.1f} |")
    lines += ["", "Per-stage (cold ask, ms): " + ", ".join(
        f"{k} p50 {v['p50']:.1f} / p99 {v['p99']:.1f}"
        for k, v in results["cold_stages_ms"].items())]
    return "\n".join(lines)
