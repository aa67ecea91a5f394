"""LLM mode keeps the server responsive when the upstream is slow (issue 14, item 10).

Every LLM answer holds a worker thread while it waits on the upstream; with no limit, 60
concurrent asks against a slow upstream took every thread of the pool, and /readyz (a thread
route) waited for the upstream too. ``GROUNDQA_LLM_MAX_CONCURRENT`` bounds the answers computed
at once; the rest wait without a thread.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.config import Settings
from service.core import QAService
from service.http.app import create_app
from tests.http.conftest import ANSWERABLE, article_documents, http_settings
from tests.service.conftest import Reply, ScriptedLLM

# About 20 s (60 asks, a 2 s upstream): with the load tests, out of `make test`.
pytestmark = pytest.mark.reliability

UPSTREAM_SECONDS = 2.0
ASKS = 60


@pytest.fixture
def slow_upstream(scripted_llm: ScriptedLLM) -> Iterator[dict[str, int]]:
    """The scripted model answers after ``UPSTREAM_SECONDS``; counts requests in flight."""
    seen = {"now": 0, "most": 0, "total": 0}
    lock = threading.Lock()

    def script(_: dict[str, Any]) -> Reply:
        with lock:
            seen["now"] += 1
            seen["total"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        time.sleep(UPSTREAM_SECONDS)
        with lock:
            seen["now"] -= 1
        return Reply("")  # an empty reply: the extractive answer is kept

    previous = scripted_llm.script
    scripted_llm.script = script
    yield seen
    scripted_llm.script = previous


def llm_client(tmp_path: Path, base_url: str, **overrides: Any) -> TestClient:
    """An app in LLM mode on the four-article index (fake embedder)."""
    data_dir = tmp_path / "data"
    IndexWriter(data_dir, HashEmbedder()).apply(add=article_documents())
    settings = http_settings(data_dir, llm_base_url=base_url, llm_model="slow-model",
                             llm_timeout_seconds=30.0, **overrides)
    return TestClient(create_app(settings, service=QAService(settings, HashEmbedder())))


def test_readyz_stays_fast_with_60_llm_asks_in_flight(
        tmp_path: Path, scripted_llm: ScriptedLLM, slow_upstream: dict[str, int]) -> None:
    with llm_client(tmp_path, scripted_llm.base_url) as client:  # the default limit
        body = {"question": ANSWERABLE[0], "min_confidence": 0.0}
        assert client.post("/v1/ask", json=body).status_code == 200  # reader loaded
        assert slow_upstream["total"] == 1, "the LLM writer is not in use"
        with ThreadPoolExecutor(ASKS) as pool:
            asks = [pool.submit(client.post, "/v1/ask", json=body) for _ in range(ASKS)]
            time.sleep(0.5)  # every ask has arrived
            readyz, healthz, pending = [], [], []
            for _ in range(6):  # while asks wait on the upstream and on each other
                started = time.perf_counter()
                assert client.get("/readyz").status_code == 200
                readyz.append(time.perf_counter() - started)
                pending.append(sum(not future.done() for future in asks))
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                healthz.append(time.perf_counter() - started)
                time.sleep(0.5)
            statuses = [future.result().status_code for future in asks]
    assert statuses == [200] * ASKS
    # Without the limit every /readyz waited for a thread, i.e. for an upstream reply
    # (>= UPSTREAM_SECONDS); with it, only the CPU work of the asks in slots competes.
    assert statistics.median(readyz) < UPSTREAM_SECONDS / 4, readyz
    assert statistics.median(healthz) < UPSTREAM_SECONDS / 4, healthz
    assert pending[len(pending) // 2] > 0, f"asks were over before /readyz was: {pending}"
    assert slow_upstream["most"] <= Settings().llm_max_concurrent
