"""A large upload that is one unpunctuated sentence, against a real server (issue 14, item 6).

A 1 MB upload of one long sentence held the writer for 226 s (chunking grew with the square of
the text) and a small add meanwhile got 409 after waiting 30 s. Here the server embeds with the
deterministic hash embedder, so what is measured is chunking and writing, not the model: the
5 MB upload must take about five times as long as the 1 MB one (a ratio, not a wall-clock
threshold; quadratic chunking made it 25), and a small add sent meanwhile must be applied.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import run_server
from tests.unit.index.test_chunking_scale import unpunctuated

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

MB = 1_000_000
NOTE = {"text": "Ferry timetable changes in winter\n\nThe island ferry will sail four times a "
                "day from November instead of six, the operator said on Friday.",
        "doc_id": "ferry-2024", "title": "Ferry timetable", "outlet": "Island News",
        "published": "2024-10-04"}


def _upload(client: httpx.Client, name: str, size: int) -> tuple[float, dict[str, object]]:
    body = unpunctuated(size, seed=size).encode()
    started = time.perf_counter()
    response = client.post("/v1/documents", files={"file": (name, body, "text/plain")})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:500]
    return elapsed, response.json()


def test_a_five_megabyte_sentence_uploads_in_linear_time(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # empty: the server starts without an index
    with run_server(data_dir, tmp_path / "server.log", wait_ready=False, embedder="hash",
                    on_missing_index="empty") as server, server.client(timeout=600) as client:
        small, _ = _upload(client, "warm-up.txt", 20_000)  # loads the tokenizer and segmenter
        one, first = _upload(client, "one-megabyte.txt", MB)
        assert first["status"] == "added"

        side: dict[str, object] = {}

        def add_note() -> None:
            time.sleep(0.5)  # while the big upload holds the writer
            with server.client(timeout=600) as other:
                response = other.post("/v1/documents", json=NOTE)
                side.update(status=response.status_code, body=response.json())

        thread = threading.Thread(target=add_note)
        thread.start()
        five, second = _upload(client, "five-megabytes.txt", 5 * MB)
        thread.join(timeout=600)
        assert second["status"] == "added"
        assert side.get("status") == 200, side  # not 409 after waiting for the writer
        print(f"\nupload of one sentence: 20 kB {small:.1f} s, 1 MB {one:.1f} s, "
              f"5 MB {five:.1f} s (ratio {five / one:.1f})")
        assert five / one < 10, (one, five)  # linear: about 5; quadratic chunking: 25
        documents = {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
        assert {"ferry-2024", str(second["doc_id"]), str(first["doc_id"])} <= documents
