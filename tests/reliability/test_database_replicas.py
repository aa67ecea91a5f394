"""Two real ``groundqa serve`` processes on one PostgreSQL database (GROUNDQA_DATABASE_URL).

The database is a real PostgreSQL 16 with pgvector started by the tests (pgserver); the demo
corpus is ingested into it with ``groundqa ingest``. The replicas share nothing but the
database: a document added through one is answered by the other as soon as the add returns;
after a delete returns through one, the other never cites it, even while a third process keeps
asking; and the demo questions get the same answers as from a server on the embedded store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, run_server, server_env

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

GROUNDQA = str(Path(sys.executable).with_name("groundqa"))
ARTICLE = {
    "doc_id": "ferry-2025", "title": "Night ferry resumes on the northern route",
    "outlet": "Harbour Gazette", "published": "2025-02-03",
    "text": "Night ferry resumes on the northern route\n\n"
            "The night ferry between Port Alder and Skerry Island resumed on Monday after a "
            "winter pause. The operator said the crossing now takes four hours and forty "
            "minutes, and that 310 passengers travelled on the first night. Tickets cost "
            "45 euros for a seat and 120 euros for a cabin.",
}
QUESTION = "How many passengers travelled on the first night of the Skerry Island ferry?"


def _ingest(env: dict[str, str]) -> None:
    done = subprocess.run([GROUNDQA, "ingest", "corpus/articles", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _cited(body: dict) -> set[str]:  # type: ignore[type-arg]
    return {c["doc_id"] for c in body["citations"]}


def test_two_replicas_on_one_database(database_url: str, tmp_path: Path) -> None:
    _ingest(server_env(tmp_path / "unused", database_url=database_url))
    _ingest(server_env(tmp_path / "embedded"))
    questions = [json.loads(line)["question"]
                 for line in (REPO / "eval/questions/seed.jsonl").read_text().splitlines()
                 if line.strip()]
    with run_server(tmp_path / "unused", tmp_path / "first.log", cli=True,
                    database_url=database_url) as first, \
            run_server(tmp_path / "unused", tmp_path / "second.log", cli=True,
                       database_url=database_url) as second, \
            run_server(tmp_path / "embedded", tmp_path / "embedded.log", cli=True) as embedded, \
            first.client() as one, second.client() as two, embedded.client() as files:
        # The demo questions: the same answers, citations and confidence from both stores.
        for question in questions:
            ours = two.post("/v1/ask", json={"question": question}).json()
            theirs = files.post("/v1/ask", json={"question": question}).json()
            for key in ("answer", "answerable", "abstain_reason", "short_answer", "citations"):
                assert ours[key] == theirs[key], (question, key)

        # Added through one replica: answered by the other as soon as the add returns.
        assert "ferry-2025" not in _cited(two.post("/v1/ask", json={"question": QUESTION})
                                          .json())
        added = one.post("/v1/documents", json=ARTICLE)
        assert added.status_code in (200, 201), added.text
        answer = two.post("/v1/ask", json={"question": QUESTION}).json()
        assert answer["index_version"] == added.json()["index_version"]
        assert "ferry-2025" in _cited(answer) and "310" in answer["answer"]

        # Deleted through one replica while the other is being asked: never cited afterwards.
        deleted_at: list[int] = []
        after_delete: list[dict] = []  # type: ignore[type-arg]
        stop = threading.Event()

        def keep_asking() -> None:
            with second.client() as asker:
                while not stop.is_set():
                    seen_delete = bool(deleted_at)
                    body = asker.post("/v1/ask", json={"question": QUESTION}).json()
                    if seen_delete:
                        after_delete.append(body)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            assert one.delete("/v1/documents/ferry-2025").status_code == 200
            deleted_at.append(1)
            for _ in range(5):
                body = two.post("/v1/ask", json={"question": QUESTION}).json()
                assert "ferry-2025" not in _cited(body)
                assert all(p["doc_id"] != "ferry-2025" for p in body["passages"])
        finally:
            stop.set()
            asker.join(timeout=120)
        assert all("ferry-2025" not in _cited(b) for b in after_delete)
        assert two.get("/v1/documents/ferry-2025").status_code == 404
