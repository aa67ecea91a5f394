"""End to end: a real uvicorn server on loopback, the real packaged model, the seed corpus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

QUESTIONS = Path(__file__).resolve().parents[2] / "eval" / "questions" / "seed.jsonl"


@pytest.fixture(scope="module")
def client(e2e_server: Server) -> Iterator[httpx.Client]:
    with e2e_server.client(timeout=60.0) as c:
        yield c


def _check_guarantees(body: dict, client: httpx.Client, texts: dict[str, str]) -> None:
    answer = body["answer"]
    ids = {c["id"] for c in body["citations"]}
    for marker in re.findall(r"\[(\d+)\]", answer):
        assert int(marker) in ids, f"marker [{marker}] does not resolve"
    for sentence in body["sentences"]:
        assert 0 <= sentence["start"] < sentence["end"] <= len(answer)
        for cite in sentence["citations"]:
            assert cite["id"] in ids
            assert f"[{cite['id']}]" in answer[sentence["start"]:sentence["end"]]
    for citation in body["citations"]:
        doc_id = citation["doc_id"]
        if doc_id not in texts:
            texts[doc_id] = client.get(f"/v1/documents/{doc_id}").json()["text"]
        span = citation["source_span"]
        assert citation["quote"] == texts[doc_id][span["start"]:span["end"]]
        assert citation["outlet"] and citation["title"]
    short = body.get("short_answer")
    if short is not None:
        cited = next(c for c in body["citations"] if c["id"] == short["citation"])
        span = short["source_span"]
        assert texts[cited["doc_id"]][span["start"]:span["end"]] == short["text"]
        assert answer.startswith(short["text"])


def test_citation_guarantees_hold_for_every_question(client: httpx.Client) -> None:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    texts: dict[str, str] = {}
    unanswerable_abstained = 0
    unanswerable = 0
    for q in questions:
        response = client.post("/v1/ask", json={"question": q["question"], "top_k": 5})
        assert response.status_code == 200, response.text
        assert "retrieve;dur=" in response.headers["server-timing"]
        body = response.json()
        _check_guarantees(body, client, texts)
        if not body["answerable"]:
            assert body["abstain_reason"] and body["answer"] and not body["citations"]
            assert body["passages"], "nearest passages are returned with an abstention"
        if not q["answerable"]:
            unanswerable += 1
            unanswerable_abstained += int(not body["answerable"])
    # How often it abstains is a quality figure, gated by `groundqa eval qa` in CI; here the
    # contract: abstentions happen, and each is well formed (checked above).
    assert unanswerable >= 12 and unanswerable_abstained > 0


def test_off_topic_questions_abstain(client: httpx.Client) -> None:
    for question in ("What is the recipe for a classic French onion soup?",
                     "Who won the 2018 football World Cup?"):
        body = client.post("/v1/ask", json={"question": question}).json()
        assert body["answerable"] is False
        assert body["abstain_reason"] in ("no_relevant_passages", "insufficient_support",
                                          "missing_key_terms")


def test_conflicting_figures_are_listed(client: httpx.Client) -> None:
    body = client.post("/v1/ask", json={
        "question": "How many militants are concentrated near the Tajik-Afghan border?"}).json()
    assert body["answerable"]
    assert body["conflicts"], body["answer"]
    values = body["conflicts"][0]["values"]
    assert len({v["value"] for v in values}) >= 2
    cited_docs = {c["doc_id"] for c in body["citations"]
                  if c["id"] in {v["citation"] for v in values}}
    assert len(cited_docs) >= 2


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"json": {"question": ""}}, 422, "empty_question"),
        ({"json": {"question": "   \n\t "}}, 422, "empty_question"),
        ({"json": {"question": "x" * 1001}}, 422, "invalid_request"),
        ({"json": {"question": "ok?", "top_k": 0}}, 422, "invalid_top_k"),
        ({"json": {"question": "ok?", "top_k": 1000}}, 422, "invalid_top_k"),
        ({"json": {"question": "ok?", "top_k": "five"}}, 422, "invalid_top_k"),
        ({"json": {"top_k": 3}}, 422, "invalid_question"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
         "malformed_json"),
        ({"json": {"question": "ok?", "filters": {"published_from": "yesterday"}}}, 422,
         "invalid_request"),
        ({"json": {"question": "ok?", "filters": {"published_from": "2023-05",
                                                    "published_to": "2022-01"}}}, 422,
         "invalid_request"),
        ({"content": b'{"question": "' + b"a" * 70000 + b'"}',
          "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
    ],
)
def test_bad_input_gets_a_json_4xx(client: httpx.Client, request_kwargs: dict, status: int,
                                   code: str) -> None:
    response = client.post("/v1/ask", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_unknown_document_and_auth(client: httpx.Client, server_url: str) -> None:
    response = client.get("/v1/documents/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "document_not_found"
    assert httpx.post(f"{server_url}/v1/ask", json={"question": "hi"}).status_code == 401
    wrong = httpx.get(f"{server_url}/v1/documents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert httpx.get(f"{server_url}/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert "groundqa_requests_total" in metrics and "groundqa_ask_stage_seconds" in metrics


def test_filters_restrict_citations(client: httpx.Client) -> None:
    body = client.post("/v1/ask", json={
        "question": "How many militants are near the border with Tajikistan?",
        "filters": {"outlets": ["SouthFront"]}}).json()
    assert all(p["outlet"] == "SouthFront" for p in body["passages"])
    assert all(c["outlet"] == "SouthFront" for c in body["citations"])
    body = client.post("/v1/search", json={"query": "militants on the border", "top_k": 10,
                                           "filters": {"published_from": "2023-01-01"}}).json()
    assert body["passages"]
    assert all(p["published"] >= "2023" for p in body["passages"])


def test_added_and_deleted_documents_change_answers(client: httpx.Client) -> None:
    question = "What did the Pamir Water Council decide about the Vakhsh hydropower quota?"
    before = client.post("/v1/ask", json={"question": question}).json()
    assert before["answerable"] is False
    text = ("Pamir Water Council meets in Khorog\n\n"
            "The Pamir Water Council decided on Monday to raise the Vakhsh hydropower quota to "
            "740 megawatts for the winter season. Council chair Dilshod Nazarov said the quota "
            "would be reviewed again in March. Farmers downstream criticised the decision.")
    added = client.post("/v1/documents", json={
        "text": text, "doc_id": "pamir-water-2024", "title": "Pamir Water Council meets",
        "outlet": "Test Wire", "published": "2024-02-05"})
    assert added.status_code == 200, added.text
    assert added.json()["status"] == "added"
    after = client.post("/v1/ask", json={"question": question}).json()
    assert after["answerable"], after
    assert "740 megawatts" in after["answer"]
    assert any(c["doc_id"] == "pamir-water-2024" for c in after["citations"])
    again = client.post("/v1/documents", json={
        "text": text, "doc_id": "pamir-water-2024", "title": "Pamir Water Council meets",
        "outlet": "Test Wire", "published": "2024-02-05"}).json()
    assert again["status"] == "unchanged"
    upload = client.post("/v1/documents", files={"file": ("note.bin", b"\x00\x01\x02binary")})
    assert upload.status_code == 422 and upload.json()["error"]["code"] == "document_unreadable"
    wrong_type = client.post("/v1/documents", content=b"hello",
                             headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    deleted = client.delete("/v1/documents/pamir-water-2024")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    gone = client.post("/v1/ask", json={"question": question}).json()
    assert gone["answerable"] is False
    assert client.get("/v1/documents/pamir-water-2024").status_code == 404
    assert client.delete("/v1/documents/pamir-water-2024").status_code == 404
    assert len(client.get("/v1/documents").json()["documents"]) == 5
