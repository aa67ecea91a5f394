"""The database goes away under a replica (GROUNDQA_DATABASE_URL): requests get a quick 503
with ``Retry-After`` instead of hanging and failing with a 500, readiness says so, and the
replica serves again, unchanged, once the database is back.

Runs on a PostgreSQL of its own (pgserver), which the test stops and starts again.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.core import QAService
from tests.http.conftest import AppClient, article_documents, http_settings
from tests.postgres import new_database, start_server

QUESTION = "How much did the repairs of the Lakeside harbour cost?"


@pytest.fixture
def own_server() -> Iterator[tuple[Any, str]]:
    path = tempfile.mkdtemp(prefix="gq-pg-")  # short: the server's socket lives in it
    yield start_server(path, cleanup_mode="stop"), path
    start_server(path, cleanup_mode="delete").cleanup()


def test_a_database_outage_is_a_quick_503_and_the_replica_recovers(
        own_server: tuple[Any, str], make_client: AppClient, service: QAService,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from index.store.postgres import POOL_WAIT_SECONDS, PostgresStore

    server, path = own_server
    url = new_database(server)
    writer_store = PostgresStore(url)
    IndexWriter(writer_store, HashEmbedder()).apply(add=article_documents()[:3])
    writer_store.close()
    replica = QAService(http_settings(tmp_path_factory.mktemp("unused") / "data",
                                      database_url=url), HashEmbedder(),
                        reader=service.reader, decision_model=service.decision_model,
                        checker=service.checker)
    client = make_client(replica, database_url=url)
    before = client.post("/v1/ask", json={"question": QUESTION})
    assert before.status_code == 200, before.text

    server.cleanup()  # the database stops
    started = time.monotonic()
    down = client.post("/v1/ask", json={"question": QUESTION})
    waited = time.monotonic() - started
    assert down.status_code == 503, down.text
    assert down.headers["retry-after"].isdigit()
    assert down.json()["error"]["code"] == "store_unavailable"
    assert "not answering" in down.json()["error"]["message"]
    assert waited < 3 * POOL_WAIT_SECONDS  # bounded by the pool wait, not a 30 s default
    assert client.get("/readyz").status_code == 503
    added = client.post("/v1/documents", json={
        "doc_id": "outage-note", "title": "A note", "outlet": "Example",
        "text": "A short note written while the database was down."})
    assert added.status_code == 503 and added.json()["error"]["code"] == "store_unavailable"

    start_server(path, cleanup_mode="stop")  # the database is back, data intact
    deadline = time.monotonic() + 30
    while (again := client.post("/v1/ask", json={"question": QUESTION})).status_code != 200:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.5)
    assert again.json()["short_answer"] == before.json()["short_answer"]
    listed = {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
    assert listed == {d.doc_id for d in article_documents()[:3]}
    replica.store.close()  # type: ignore[attr-defined]
