"""Crash during ingest: ``groundqa ingest`` SIGKILLed part-way leaves the previous version whole.

The CLI ingests 200 generated articles into a copy of the seed index and is killed twice: once
while it chunks and embeds (it holds the writer lock, nothing is on disk yet) and once while it
writes the new version (its temporary directory exists). Each time a server must serve the
previous version completely — same documents, hashes, chunk count, and working answers — and
a third, undisturbed run must complete the ingest, which the running server then picks up.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import copy_index, run_server, server_env

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

ARTICLES = 200
_SYLLABLES = ["ka", "ro", "mi", "zan", "tel", "vo", "shir", "dun", "ba", "lek", "ost", "qar"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()


def write_articles(folder: Path, count: int) -> dict[str, tuple[str, str]]:
    """``count`` synthetic news articles; returns doc_id -> (question, expected figure)."""
    folder.mkdir()
    rng = random.Random(7)
    facts: dict[str, tuple[str, str]] = {}
    for i in range(count):
        reservoir, town, official = _name(rng), _name(rng), f"{_name(rng)} {_name(rng)}"
        volume = f"{rng.randint(100, 999)} million cubic metres"
        paragraphs = [
            f"{reservoir} reservoir expansion approved in {town}",
            f"The regional water authority in {town} approved the expansion of the {reservoir} "
            f"reservoir on Tuesday after two years of negotiations with farmers and engineers.",
            f"Officials said the enlarged {reservoir} reservoir will hold {volume} of water, "
            f"enough to irrigate the valley through a dry summer. Chief engineer {official} "
            f"said construction would begin in the spring and last about {i % 5 + 2} years.",
            f"Residents of {town} welcomed the decision but asked the authority to publish the "
            f"full cost of the project, which has not yet been disclosed to the public.",
        ]
        doc_id = f"reservoir-{i:03d}"
        (folder / f"{doc_id}.txt").write_text("\n\n".join(paragraphs) + "\n")
        facts[doc_id] = (f"How much water will the {reservoir} reservoir hold?", volume)
    return facts


def _lock_held_by(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` holds the writer lock, read from /proc/locks (probing with flock would
    race the writer, which does not wait for the lock)."""
    inode = (data_dir / "writer.lock").stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and str(pid) in fields and any(
                f.endswith(f":{inode}") for f in fields):
            return True
    return False


def _start_ingest(articles: Path, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    groundqa = Path(sys.executable).with_name("groundqa")
    with open(log, "wb") as out:
        return subprocess.Popen([str(groundqa), "ingest", str(articles), "--json"],
                                env=server_env(data_dir), stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, process: subprocess.Popen[bytes], what: str,  # type: ignore[no-untyped-def]
              timeout: float = 240.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"ingest exited ({process.returncode}) before {what}")
        time.sleep(interval)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def _state(client: httpx.Client) -> dict[str, object]:
    listed = client.get("/v1/documents").json()
    ready = client.get("/readyz").json()
    return {"version": listed["index_version"], "chunks": ready["chunks"],
            "documents": {d["doc_id"]: d["content_hash"] for d in listed["documents"]}}


def _serves_whole(client: httpx.Client, expected: dict[str, object]) -> None:
    assert _state(client) == expected
    for doc_id in expected["documents"]:  # type: ignore[attr-defined]
        assert client.get(f"/v1/documents/{doc_id}").status_code == 200
    # Integrity, not the abstention bar: min_confidence 0 answers whenever anything is found.
    body = client.post("/v1/ask", json={
        "question": "Why did Saudi Arabia close its embassy in Kabul?", "min_confidence": 0.0}
    ).json()
    assert body["answerable"] and body["citations"], body
    assert body["index_version"] == expected["version"]


def test_killed_ingest_leaves_previous_version_and_rerun_completes(
        seed_index_dir: Path, tmp_path: Path) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    articles = tmp_path / "articles"
    facts = write_articles(articles, ARTICLES)
    versions = data_dir / "versions"
    previous = (data_dir / "CURRENT").read_text().strip()

    with run_server(data_dir, tmp_path / "server.log") as server, server.client() as client:
        before = _state(client)
        assert before["version"] == previous and len(before["documents"]) == 5  # type: ignore[arg-type]

        # 1. Killed while chunking/embedding: it holds the writer lock, nothing written yet.
        ingest = _start_ingest(articles, data_dir, tmp_path / "ingest1.log")
        _wait_for(lambda: _lock_held_by(ingest.pid, data_dir), ingest, "the writer lock")
        time.sleep(0.5)  # into chunking/embedding (several seconds for ~600 chunks)
        assert not list(versions.glob(".tmp-*")), "already writing: embedding was too fast"
        _kill(ingest)
        assert (data_dir / "CURRENT").read_text().strip() == previous
        assert sorted(p.name for p in versions.iterdir()) == [previous]
        _serves_whole(client, before)

        # 2. Killed while writing the new version (its temporary directory exists).
        ingest = _start_ingest(articles, data_dir, tmp_path / "ingest2.log")
        _wait_for(lambda: any(versions.glob(".tmp-*")), ingest, "the write phase",
                  interval=0.002)
        _kill(ingest)
        assert (data_dir / "CURRENT").read_text().strip() == previous
        _serves_whole(client, before)

    # A fresh server (fresh process, fresh load from disk) serves the same previous version.
    with run_server(data_dir, tmp_path / "server2.log") as server, server.client() as client:
        _serves_whole(client, before)

        # 3. Undisturbed, the same ingest completes; the running server switches to it.
        ingest = _start_ingest(articles, data_dir, tmp_path / "ingest3.log")
        assert ingest.wait(timeout=600) == 0, (tmp_path / "ingest3.log").read_text()[-3000:]
        log = (tmp_path / "ingest3.log").read_text()
        summary = json.loads(log[log.index("{"):])
        assert len(summary["added"]) == ARTICLES and summary["unchanged"] == []
        current = (data_dir / "CURRENT").read_text().strip()
        assert current != previous and not list(versions.glob(".tmp-*"))
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["index_version"] != current:
            assert time.monotonic() < deadline, "server did not switch to the new version"
            time.sleep(0.2)
        after = _state(client)
        documents: dict[str, str] = after["documents"]  # type: ignore[assignment]
        assert len(documents) == 5 + ARTICLES
        assert {k: documents[k] for k in before["documents"]} == before["documents"]  # type: ignore[attr-defined]
        doc_id, (question, volume) = sorted(facts.items())[123]
        body = client.post("/v1/ask", json={"question": question,
                                            "min_confidence": 0.0}).json()
        assert body["answerable"], body
        assert volume in body["answer"]
        assert doc_id in {c["doc_id"] for c in body["citations"]}
