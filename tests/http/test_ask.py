"""``/v1/ask`` (JSON and streamed), ``/v1/ask/stream`` and ``/v1/search``: shapes and guarantees.

Answer *content* is the answering code's business; these tests hold the contract: the response
shape, every ``[n]`` resolving, every quote being the document text at its span, abstentions
carrying a reason and no citations, and bad input getting the JSON error envelope.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core import QAService
from tests.http.conftest import (
    ANSWERABLE,
    OFF_TOPIC,
    AppClient,
    assert_error,
    check_answer_contract,
    sse_events,
)

ASK_FIELDS = {"id", "question", "answerable", "abstain_reason", "answer", "answer_type",
              "sentences", "citations", "conflicts", "passages", "timings_ms", "index_version",
              "generator"}


@pytest.mark.parametrize("question", [*ANSWERABLE, OFF_TOPIC])
def test_ask_keeps_the_citation_guarantees(client: TestClient, question: str) -> None:
    response = client.post("/v1/ask", json={"question": question, "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert ASK_FIELDS <= set(body)
    assert body["question"] == question and body["index_version"]
    assert len(body["passages"]) <= 3
    check_answer_contract(body, client)
    timing = response.headers["server-timing"]
    assert [part.split(";")[0] for part in timing.split(", ")] == [
        "retrieve", "select", "compose", "verify", "total"]


def test_some_question_is_answered_with_citations(client: TestClient) -> None:
    bodies = [client.post("/v1/ask", json={"question": q}).json() for q in ANSWERABLE]
    answered = [b for b in bodies if b["answerable"]]
    assert answered, [b["abstain_reason"] for b in bodies]
    for body in answered:
        assert body["citations"] and body["sentences"]


def test_an_empty_index_abstains_with_a_reason(empty_service: QAService,
                                               make_client: AppClient) -> None:
    client = make_client(empty_service)
    body = client.post("/v1/ask", json={"question": ANSWERABLE[0]}).json()
    assert body["answerable"] is False and body["abstain_reason"]
    assert body["answer"] and body["citations"] == [] and body["passages"] == []
    assert body["index_version"] is None


def test_filters_restrict_passages_and_citations(client: TestClient) -> None:
    body = client.post("/v1/ask", json={
        "question": ANSWERABLE[1], "filters": {"outlets": ["Coastal Ledger"]}}).json()
    assert {p["outlet"] for p in body["passages"]} <= {"Coastal Ledger"}
    assert {c["outlet"] for c in body["citations"]} <= {"Coastal Ledger"}
    body = client.post("/v1/ask", json={
        "question": ANSWERABLE[0], "filters": {"doc_ids": ["tram-2024"]}}).json()
    assert {p["doc_id"] for p in body["passages"]} <= {"tram-2024"}
    dated = client.post("/v1/search", json={
        "query": "repairs passengers library apples", "top_k": 10,
        "filters": {"published_from": "2024", "published_to": "2024-12-31"}}).json()
    assert dated["passages"]
    assert all(p["published"].startswith("2024") for p in dated["passages"])


@pytest.mark.parametrize(("payload", "status", "code"), [
    ({"question": ""}, 422, "empty_question"),
    ({"question": " \n\t\x00\x7f "}, 422, "empty_question"),
    ({"question": "x" * 1001}, 422, "invalid_request"),
    ({"question": "ok?", "top_k": 0}, 422, "invalid_top_k"),
    ({"question": "ok?", "top_k": 51}, 422, "invalid_top_k"),
    ({"question": "ok?", "top_k": "5"}, 422, "invalid_top_k"),
    ({"question": "ok?", "top_k": 2.5}, 422, "invalid_top_k"),
    ({"question": "ok?", "top_k": True}, 422, "invalid_top_k"),
    ({"top_k": 3}, 422, "invalid_question"),
    ({"question": 7}, 422, "invalid_question"),
    ({"question": "ok?", "surprise": 1}, 422, "invalid_request"),
    ({"question": "ok?", "stream": "yes"}, 422, "invalid_request"),
    ({"question": "ok?", "filters": {"published_from": "yesterday"}}, 422, "invalid_request"),
    ({"question": "ok?", "filters": {"published_from": "2023-05", "published_to": "2022-01"}},
     422, "invalid_request"),
    ({"question": "ok?", "filters": {"published_from": "2023-13"}}, 422, "invalid_request"),
    ({"question": "ok?", "filters": {"colour": "red"}}, 422, "invalid_request"),
])
@pytest.mark.parametrize("route", ["/v1/ask", "/v1/ask/stream"])
def test_bad_questions_get_a_json_4xx(client: TestClient, route: str, payload: dict[str, Any],
                                      status: int, code: str) -> None:
    assert_error(client.post(route, json=payload), status, code)


@pytest.mark.parametrize(("content", "code"), [
    (b"{not json", "malformed_json"),
    (b'{"question": "\xff\xfe"}', "malformed_json"),
    (b"[" * 5000 + b"]" * 5000, "malformed_json"),
    (b"", "invalid_request"),
    (b"[]", "invalid_request"),
])
def test_unparsable_bodies(client: TestClient, content: bytes, code: str) -> None:
    response = client.post("/v1/ask", content=content,
                           headers={"content-type": "application/json"})
    assert_error(response, 400 if code == "malformed_json" else 422, code)


@pytest.mark.parametrize("route", ["/v1/ask/stream", "/v1/ask"])
def test_ask_streams_passages_answer_citations_done(client: TestClient, route: str) -> None:
    response = client.post(route, json={"question": ANSWERABLE[1], "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) <= {"answer"}
    done = events[-1][1]
    assert events[0][1]["passages"] == done["passages"]
    assert "".join(data["delta"] for name, data in events if name == "answer") == done["answer"]
    assert events[-2][1]["citations"] == done["citations"]
    assert events[-2][1]["answerable"] == done["answerable"]
    for name, data in events:  # markers are never cut between two deltas
        if name == "answer":
            assert data["delta"].count("[") == data["delta"].count("]")
    check_answer_contract(done, client)


def test_a_failure_after_the_stream_began_is_an_error_event(
        service: QAService, make_client: AppClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    client = make_client(service)
    monkeypatch.setattr(service, "ask", broken)
    response = client.post("/v1/ask/stream", json={"question": "anything?"})
    assert response.status_code == 200
    assert sse_events(response.text) == [
        ("error", {"error": {"code": "internal_error",
                             "message": "an unexpected error occurred"}})]


def test_search_returns_ranked_passages(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": "tram passengers", "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "tram passengers" and body["index_version"]
    assert 1 <= len(body["passages"]) <= 2
    assert body["passages"][0]["doc_id"] == "tram-2024"
    scores = [p["score"] for p in body["passages"]]
    assert scores == sorted(scores, reverse=True)
    text = client.get("/v1/documents/tram-2024").json()["text"]
    first = body["passages"][0]
    assert first["text"] == text[first["source_span"]["start"]:first["source_span"]["end"]]


@pytest.mark.parametrize(("payload", "code"), [
    ({"query": ""}, "empty_question"),
    ({"query": "x", "top_k": 0}, "invalid_top_k"),
    ({"query": "x", "top_k": 51}, "invalid_top_k"),
    ({"top_k": 3}, "invalid_request"),
    ({"query": "x", "filters": {"published_from": "2024", "published_to": "2023"}},
     "invalid_request"),
])
def test_bad_searches_get_a_json_4xx(client: TestClient, payload: dict[str, Any],
                                     code: str) -> None:
    assert_error(client.post("/v1/search", json=payload), 422, code)
