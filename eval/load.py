"""Load generator: many ``POST /v1/ask`` requests at a fixed concurrency against a live server.

    python -m eval.load --url http://127.0.0.1:8000 --requests 10000 --concurrency 32

Questions cycle through ``eval/questions/seed.jsonl``. Every response must be a 200 with an
answer and an index version, or it counts as an error. While the load runs, ``/healthz`` is
probed every 100 ms to show whether the server's event loop stays responsive. Prints latency
percentiles and throughput, and writes them as JSON with ``--json``. Targets loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

SEED_QUESTIONS = Path(__file__).resolve().parent / "questions" / "seed.jsonl"


@dataclass
class LoadReport:
    """What a load run measured."""

    url: str
    requests: int
    concurrency: int
    seconds: float
    errors: int
    statuses: dict[str, int]
    latency_ms: dict[str, float]
    throughput_rps: float
    health_latency_ms: dict[str, float]
    health_probes: int
    health_errors: int
    error_samples: list[str] = field(default_factory=list)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of a list of milliseconds (NaN when empty)."""
    if not values:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "max": nan, "mean": nan}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": round(at(0.50), 2), "p90": round(at(0.90), 2), "p99": round(at(0.99), 2),
            "max": round(ordered[-1], 2), "mean": round(statistics.fmean(ordered), 2)}


def load_questions(path: Path = SEED_QUESTIONS) -> list[str]:
    """The questions of a JSONL question file."""
    return [json.loads(line)["question"] for line in path.read_text().splitlines()
            if line.strip()]


def _valid_answer(response: httpx.Response) -> str | None:
    """None when ``response`` is a well-formed /v1/ask answer, else what is wrong with it."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        return "response is not JSON"
    if not isinstance(body, dict) or not body.get("answer") or not body.get("index_version"):
        return f"incomplete answer: {str(body)[:200]}"
    return None


async def run_load(url: str, requests: int, concurrency: int, questions: list[str],
                   api_key: str | None = None, timeout: float = 120.0,
                   health_interval: float = 0.1) -> LoadReport:
    """Send ``requests`` asks with ``concurrency`` in flight; probe /healthz meanwhile.

    Every latency is measured in this process, so a pause here counts as the server's. The
    caller's heap is frozen for the run: a full collection over it (a test process holding
    the embedding model: ~1 s with two busy cores) once showed as a 2-3 s /healthz outlier.
    """
    gc.collect()
    gc.freeze()
    try:
        return await _run_load(url, requests, concurrency, questions, api_key, timeout,
                               health_interval)
    finally:
        gc.unfreeze()


async def _run_load(url: str, requests: int, concurrency: int, questions: list[str],
                    api_key: str | None, timeout: float, health_interval: float) -> LoadReport:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    # Idle connections are dropped well before the server's keep-alive timeout (uvicorn: 5 s).
    # At equal timeouts a request can go out on a connection the server is closing, which
    # surfaced as a rare ReadError in the 10,000-request run.
    limits = httpx.Limits(max_connections=concurrency + 2,
                          max_keepalive_connections=concurrency + 2, keepalive_expiry=2.0)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    samples: list[str] = []
    errors = 0
    next_index = 0
    health: list[float] = []
    health_errors = 0
    done = asyncio.Event()

    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout,
                                 limits=limits) as client:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < requests:
                index = next_index
                next_index += 1
                question = questions[index % len(questions)]
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/ask", json={"question": question})
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    problem: str | None = f"{type(exc).__name__}: {exc!r}"
                else:
                    latencies.append((time.perf_counter() - started) * 1000.0)
                    statuses[str(response.status_code)] += 1
                    problem = _valid_answer(response)
                if problem is not None:
                    errors += 1
                    if len(samples) < 10:
                        samples.append(problem)

        async def prober() -> None:
            nonlocal health_errors
            async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout) as probe:
                while not done.is_set():
                    started = time.perf_counter()
                    try:
                        ok = (await probe.get("/healthz")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    health.append((time.perf_counter() - started) * 1000.0)
                    health_errors += int(not ok)
                    try:
                        await asyncio.wait_for(done.wait(), health_interval)
                    except TimeoutError:
                        pass

        probe_task = asyncio.create_task(prober())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        done.set()
        await probe_task

    return LoadReport(
        url=url, requests=requests, concurrency=concurrency, seconds=round(seconds, 2),
        errors=errors, statuses=dict(statuses), latency_ms=percentiles(latencies),
        throughput_rps=round(requests / seconds, 2) if seconds else float("nan"),
        health_latency_ms=percentiles(health), health_probes=len(health),
        health_errors=health_errors, error_samples=samples,
    )


def format_report(report: LoadReport) -> str:
    """A short human-readable summary."""
    lat, hl = report.latency_ms, report.health_latency_ms
    return "\n".join([
        f"POST /v1/ask x {report.requests} at concurrency {report.concurrency} -> {report.url}",
        f"  errors        {report.errors}   statuses {report.statuses}",
        f"  latency ms    p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  "
        f"max {lat['max']}",
        f"  throughput    {report.throughput_rps} req/s over {report.seconds} s",
        f"  /healthz ms   p50 {hl['p50']}  p99 {hl['p99']}  max {hl['max']}  "
        f"({report.health_probes} probes during the run, {report.health_errors} failed)",
        *(f"  error: {s}" for s in report.error_samples),
    ])


def main(argv: list[str] | None = None) -> int:
    """Run from the command line; exit 1 when any request failed."""
    parser = argparse.ArgumentParser(prog="python -m eval.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--questions", type=Path, default=SEED_QUESTIONS)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--json", type=Path, default=None, help="Write the report here.")
    args = parser.parse_args(argv)
    report = asyncio.run(run_load(args.url, args.requests, args.concurrency,
                                  load_questions(args.questions), api_key=args.api_key))
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = asdict(report)
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
