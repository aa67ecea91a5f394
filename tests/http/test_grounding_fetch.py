"""`groundqa eval grounding --chat-url`: answers fetched with the official ``openai`` client from
groundqa's own chat API and from another OpenAI-compatible one, then judged."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eval.grounding import evaluate_answers
from eval.grounding_fetch import ChatFetchError, fetch_answers
from tests.http.conftest import ANSWERABLE, ARTICLES, OFF_TOPIC, AppClient


def test_groundqa_answers_are_fetched_with_their_quotes_and_judged_grounded(
        service: Any, make_client: AppClient) -> None:
    client = make_client(service)
    rows = fetch_answers("http://testserver/v1", [*ANSWERABLE[:2], OFF_TOPIC],
                         http_client=client)
    assert [r["question"] for r in rows] == [*ANSWERABLE[:2], OFF_TOPIC]
    answered = [r for r in rows if r["citations"]]
    assert len(answered) >= 1
    for row in answered:
        for citation in row["citations"]:  # the verbatim quote, not the Markdown source line
            assert f"[{citation['id']}]" in row["answer"]
            assert any(citation["text"] in article["text"] for article in ARTICLES)
    result = evaluate_answers(answered)
    # Extractive answers quote their sources: every judged sentence is supported.
    assert result["groundedness"] == pytest.approx(1.0)
    assert result["citation_recall"] == pytest.approx(1.0)


def _other_chat_api() -> FastAPI:
    """An OpenAI-compatible API of another system: Markdown with a sources list."""
    api = FastAPI()

    @api.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "other-rag", "object": "model", "created": 0,
                                            "owned_by": "someone"}]}

    @api.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> dict[str, Any]:
        assert body["model"] == "other-rag"
        content = ("The harbour reopened on Tuesday after repairs [1]. The repairs cost "
                   "95 million euros [1].\n\nSources:\n[1] The Lakeside harbour reopened on "
                   "Tuesday after eight months of repairs to its breakwater. The harbour "
                   "authority said the work cost 12 million euros.")
        return {"id": "c1", "object": "chat.completion", "created": 0, "model": "other-rag",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}]}
    return api


def test_another_systems_answers_are_read_from_its_sources_list_and_judged() -> None:
    with TestClient(_other_chat_api()) as client:
        rows = fetch_answers("http://testserver/v1", ["How much did the repairs cost?"],
                             http_client=client)
    assert rows[0]["answer"].endswith("95 million euros [1].")
    assert rows[0]["citations"][0]["id"] == "1"
    labels = [s["label"] for s in evaluate_answers(rows)["per_answer"][0]["sentences"]]
    assert labels == ["supported", "unsupported"]  # the invented figure is caught


def test_a_refusing_chat_api_is_one_clear_error(service: Any, make_client: AppClient) -> None:
    client = make_client(service, api_keys="right-key")
    with pytest.raises(ChatFetchError, match="HTTP 401"):
        fetch_answers("http://testserver/v1", ["Why?"], api_key="wrong", http_client=client)
