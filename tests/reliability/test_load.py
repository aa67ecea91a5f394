"""Load: 1,000 ``/v1/ask`` at concurrency 32 on a real server, zero errors, healthz stays fast.

The full run (10,000 requests) is ``python -m eval.load --requests 10000 --concurrency 32
--url ...``; its figures are in the README. Here a smaller count keeps CI fast. The bounds on
/healthz are deliberately loose (STYLE 12: tests don't benchmark): they catch an event loop
blocked by model or FAISS work, where liveness would wait as long as an answer does.
"""

from __future__ import annotations

import asyncio

import pytest

from eval.load import format_report, load_questions, run_load
from tests.reliability.conftest import API_KEY, Server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

REQUESTS = 1000
CONCURRENCY = 32


def test_asks_under_load_all_succeed_and_healthz_stays_fast(keyed_server: Server) -> None:
    report = asyncio.run(run_load(keyed_server.url, REQUESTS, CONCURRENCY, load_questions(),
                                  api_key=API_KEY))
    print("\n" + format_report(report))
    assert report.errors == 0, report.error_samples
    assert report.statuses == {"200": REQUESTS}
    # Saturated: 32 asks share 2 cores, so each waits for the others...
    assert report.latency_ms["p50"] > 0
    # ...but liveness is answered on the event loop, never queued behind them.
    assert report.health_probes >= 5 and report.health_errors == 0
    assert report.health_latency_ms["p50"] < report.latency_ms["p50"] / 4
    assert report.health_latency_ms["max"] < 2000
