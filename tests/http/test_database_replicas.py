"""Two API replicas on one PostgreSQL database (GROUNDQA_DATABASE_URL), in-process.

Each replica is its own QAService and app, as two ``groundqa serve`` processes would be; they
share nothing but the database. Polling is set far beyond the test's length, so only the check
of the live version at the start of every request can make a change through one replica
visible through the other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.core import QAService
from tests.http.conftest import ARTICLES, AppClient, article_documents, http_settings


@pytest.fixture
def replicas(database_url: str, make_client: AppClient, service: QAService,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    from index.store.postgres import PostgresStore

    store = PostgresStore(database_url)
    IndexWriter(store, HashEmbedder()).apply(add=article_documents()[:3])
    store.close()
    unused = tmp_path_factory.mktemp("no-files") / "data"  # the files are never read
    # The models are the read-only service's (loading them twice per test is slow).
    services = [QAService(http_settings(unused, database_url=database_url,
                                        reload_check_seconds=3600.0), HashEmbedder(),
                          reader=service.reader, decision_model=service.decision_model,
                          checker=service.checker) for _ in range(2)]
    clients = [make_client(s, database_url=database_url) for s in services]
    yield clients[0], clients[1]
    for replica in services:
        replica.store.close()  # type: ignore[attr-defined]


def _cited_docs(client: TestClient, question: str) -> set[str]:
    body = client.post("/v1/ask", json={"question": question, "top_k": 10}).json()
    return ({c["doc_id"] for c in body["citations"]}
            | {p["doc_id"] for p in body["passages"]})


def test_a_document_added_through_one_replica_is_served_by_the_other(
        replicas: tuple[TestClient, TestClient]) -> None:
    first, second = replicas
    tram = ARTICLES[3]
    question = "How many passengers did the Riverside tram line carry on its first day?"
    assert "tram-2024" not in _cited_docs(second, question)
    before = second.get("/readyz").json()["index_version"]

    added = first.post("/v1/documents", json={k: tram[k] for k in (
        "doc_id", "title", "outlet", "published", "text")})
    assert added.status_code in (200, 201), added.text

    assert second.get("/readyz").json()["index_version"] == added.json()["index_version"] \
        != before
    assert second.get("/v1/documents/tram-2024").json()["text"].startswith("New tram line")
    found = second.post("/v1/search", json={"query": question, "top_k": 3}).json()
    assert found["passages"][0]["doc_id"] == "tram-2024"


def test_a_document_deleted_through_one_replica_is_never_cited_by_the_other(
        replicas: tuple[TestClient, TestClient]) -> None:
    first, second = replicas
    question = "How much did the repairs of the Lakeside harbour cost?"
    assert "harbour-2024" in _cited_docs(second, question)

    assert first.delete("/v1/documents/harbour-2024").status_code == 200

    for _ in range(3):
        assert "harbour-2024" not in _cited_docs(second, question)
    assert second.get("/v1/documents/harbour-2024").status_code == 404
    listed = {d["doc_id"] for d in second.get("/v1/documents").json()["documents"]}
    assert listed == {"library-2023", "orchard-2022"}
