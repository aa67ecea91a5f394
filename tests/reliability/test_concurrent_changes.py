"""Concurrent change: documents added and deleted over HTTP while 8 clients keep asking.

Two writers change the index through the API (the writer lock serialises them) while eight
readers ask questions that the new documents compete for. No request may fail, and no answer
may mix index versions: every cited quote and every passage of a response must come from a
document present in the version the response names, with the exact text of that document.
The version -> documents map is rebuilt from the writers' own responses (each names the
version it produced; versions are applied in order under the lock).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import copy_index, run_server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

READERS = 8
QUESTIONS = [
    "How many militants are concentrated near the Tajik-Afghan border?",
    "Why did Saudi Arabia close its embassy in Kabul?",
    "How many IS fighters are near the border with Tajikistan?",
    "What did border guards in Khorog report about militants?",
    "Who commands the border detachment in Ishkashim?",
    "How many fighters crossed near the Panj river?",
]


def _article(n: int) -> dict[str, str]:
    towns = ["Khorog", "Ishkashim", "Darvaz", "Vanj", "Rushan", "Shuroobod"]
    town = towns[n % len(towns)]
    text = (f"Border guards report militants near {town}\n\n"
            f"Border guards in {town} on the Tajik-Afghan border said on Friday that about "
            f"{1200 + 100 * n} militants were concentrated on the Afghan side of the Panj "
            f"river. Colonel Rustam Nazar-{n}, who commands the border detachment in {town}, "
            f"said patrols had been doubled along the river. Local residents said the number "
            f"of fighters crossing near the river had grown since the spring.")
    return {"text": text, "doc_id": f"border-report-{n}", "title": f"Militants near {town}",
            "outlet": "Reliability Wire", "published": f"2024-0{n % 9 + 1}-15"}


def test_answers_never_mix_versions_while_documents_change(
        seed_index_dir: Path, tmp_path: Path) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    with run_server(data_dir, tmp_path / "server.log") as server, server.client() as setup:
        initial = setup.get("/v1/documents").json()
        seed_ids = {d["doc_id"] for d in initial["documents"]}
        texts = {d: setup.get(f"/v1/documents/{d}").json()["text"] for d in seed_ids}
        removed_seed = sorted(seed_ids)[-1]
        plans = [
            [("add", 0), ("add", 1), ("delete", 0), ("add", 2), ("delete_seed", None)],
            [("add", 3), ("add", 4), ("delete", 3), ("add", 5)],
        ]
        changes: list[tuple[str, str, str]] = []  # (version, "add"/"delete", doc_id)
        problems: list[str] = []
        responses: list[dict] = []
        lock = threading.Lock()
        writers_done = threading.Event()

        def write(plan: list[tuple[str, int | None]]) -> None:
            with server.client() as client:
                for action, n in plan:
                    if action == "add":
                        article = _article(int(n))  # type: ignore[arg-type]
                        response = client.post("/v1/documents", json=article)
                        doc_id = article["doc_id"]
                        if response.status_code == 200:
                            text = client.get(f"/v1/documents/{doc_id}").json()["text"]
                            with lock:
                                texts[doc_id] = text
                    else:
                        doc_id = removed_seed if action == "delete_seed" else f"border-report-{n}"
                        response = client.delete(f"/v1/documents/{doc_id}")
                    with lock:
                        if response.status_code != 200:
                            problems.append(f"{action} {doc_id}: {response.status_code} "
                                            f"{response.text[:200]}")
                            continue
                        kind = "add" if action == "add" else "delete"
                        changes.append((response.json()["index_version"], kind, doc_id))
                    time.sleep(0.2)

        def read(worker: int) -> None:
            with server.client() as client:
                i = worker
                while not writers_done.is_set() or i < worker + 2 * len(QUESTIONS):
                    question = QUESTIONS[i % len(QUESTIONS)]
                    i += 1
                    # min_confidence 0: every ask answers, so every answer is checked.
                    response = client.post("/v1/ask", json={"question": question, "top_k": 8,
                                                            "min_confidence": 0.0})
                    with lock:
                        if response.status_code != 200:
                            problems.append(f"ask: {response.status_code} {response.text[:200]}")
                        else:
                            responses.append(response.json())

        readers = [threading.Thread(target=read, args=(w,)) for w in range(READERS)]
        writers = [threading.Thread(target=write, args=(p,)) for p in plans]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=300)
        writers_done.set()
        for thread in readers:
            thread.join(timeout=300)
        assert not problems, problems[:5]

        # Rebuild what each version contained from the writers' responses.
        contents = {initial["index_version"]: frozenset(seed_ids)}
        docs = set(seed_ids)
        for version, kind, doc_id in sorted(changes):
            if kind == "add":
                docs.add(doc_id)
            else:
                docs.discard(doc_id)
            assert version not in contents, f"two changes produced {version}"
            contents[version] = frozenset(docs)
        assert len(changes) == sum(len(p) for p in plans)

        versions_seen: set[str] = set()
        for body in responses:
            version = body["index_version"]
            assert version in contents, f"response names unknown version {version}"
            versions_seen.add(version)
            present = contents[version]
            for citation in body["citations"]:
                assert citation["doc_id"] in present, (version, citation["doc_id"])
                span = citation["source_span"]
                assert texts[citation["doc_id"]][span["start"]:span["end"]] == citation["quote"]
            for passage in body["passages"]:
                assert passage["doc_id"] in present, (version, passage["doc_id"])
                span = passage["source_span"]
                assert texts[passage["doc_id"]][span["start"]:span["end"]] == passage["text"]
        assert len(versions_seen) >= 3, versions_seen
        assert sum(bool(b["citations"]) for b in responses) > len(responses) / 2

        # The final state is exactly what the writers asked for.
        final = setup.get("/v1/documents").json()
        expected = (seed_ids - {removed_seed}) | {f"border-report-{n}" for n in (1, 2, 4, 5)}
        assert {d["doc_id"] for d in final["documents"]} == expected
        assert final["index_version"] == max(contents)
        for doc_id in expected - seed_ids:
            assert setup.get(f"/v1/documents/{doc_id}").json()["text"] == texts[doc_id]
