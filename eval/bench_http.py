"""What groundqa's HTTP layers cost per request, apart from the answering work.

The same cheap route (``GET /healthz``, which touches no model or index) is called straight
through ASGI, with no socket or client in the way, on two apps: the service's own app (every
middleware: limits, guard, HEAD, slow readers, error mapping, CORS when configured) and a bare
FastAPI app holding only that route. The difference between their per-request times is what
the middleware stack adds to every request, /v1/ask included.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from eval.bench_common import load_average, machine, markdown_table, percentiles


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": headers,
            "server": ("bench", 80), "client": ("127.0.0.1", 50000)}


async def _timed_calls(app: Any, path: str, headers: list[tuple[bytes, bytes]],
                       requests: int) -> list[float]:
    """Milliseconds per request for ``requests`` sequential GETs of ``path``."""
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))

    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        await app(_scope(path, headers), receive, send)
        timings.append((time.perf_counter() - started) * 1000.0)
    if set(status) != {200}:
        raise RuntimeError(f"{path} answered {sorted(set(status))}, expected 200")
    return timings


def run_middleware_bench(requests: int = 5000, rounds: int = 3) -> dict[str, Any]:
    """Per-request time of the full app and of a bare app, interleaved over ``rounds``."""
    from fastapi import FastAPI

    from service.config import Settings
    from service.http.app import create_app
    from service.http.routes import ops

    bare = FastAPI()
    bare.include_router(ops.router)
    apps = {
        "bare FastAPI (the route only)": (bare, []),
        "groundqa app": (create_app(Settings(api_keys=[])), []),
        "groundqa app, keys and CORS configured": (
            create_app(Settings(api_keys=["bench-key"], cors_origins=["https://example.org"])),
            [(b"origin", b"https://example.org")]),
    }
    path = "/healthz"  # no model, no index, no worker thread: only the layers around it

    samples: dict[str, list[float]] = {name: [] for name in apps}
    load_before = load_average()
    for _ in range(rounds):
        for name, (app, headers) in apps.items():
            asyncio.run(_timed_calls(app, path, headers, requests // 10))  # warm
            samples[name] += asyncio.run(_timed_calls(app, path, headers, requests))
    runs: list[dict[str, Any]] = [{"app": name, "path": path, **percentiles(values)}
            for name, values in samples.items()]
    for run in runs:
        run["added_p50_ms"] = round(run["p50"] - runs[0]["p50"], 4)
    return {"benchmark": "middleware", "machine": machine(), "requests_per_round": requests,
            "rounds": rounds, "runs": runs,
            "load_average_1m": round((load_before + load_average()) / 2, 2)}


def middleware_markdown(report: dict[str, Any]) -> str:
    """One row per app: per-request p50/p95/p99 and what the stack adds at the median."""
    rows = [[r["app"], r["path"], r["n"], r["p50"], r["p95"], r["p99"], r["added_p50_ms"]]
            for r in report["runs"]]
    return (f"HTTP layers per request, straight through ASGI (no socket), "
            f"{report['rounds']} interleaved rounds of {report['requests_per_round']}, "
            f"load {report['load_average_1m']}:\n\n"
            + markdown_table(["app", "path", "n", "p50 ms", "p95 ms", "p99 ms",
                              "added at p50 ms"], rows))
