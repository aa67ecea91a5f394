"""OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions`` (JSON and streamed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http.conftest import (
    ANSWERABLE,
    assert_error,
    assert_markdown_carries_answer,
    check_answer_contract,
    sse_events,
)

QUESTION = ANSWERABLE[1]


def check_chat_answer(content: str, extra: dict[str, Any], client: TestClient) -> None:
    """The Markdown carries the answer; its markers resolve; the extra field keeps the
    /v1/ask guarantees."""
    assert_markdown_carries_answer(content, extra)
    ids = {c["id"] for c in extra["citations"]}
    assert {int(m) for m in re.findall(r"\[(\d+)\]", content)} <= ids
    if extra["citations"]:
        assert "**Sources**" in content
    check_answer_contract({**extra, "passages": []}, client)
    assert extra["abstained"] is (not extra["answerable"])


def test_models(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["groundqa"]


def test_chat_completion(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": "anything", "temperature": 0.3,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": QUESTION}]}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "anything"
    assert body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    extra = body["groundqa"]
    assert extra["question"] == QUESTION and extra["searched"] == QUESTION
    assert extra["rewritten"] is False and extra["rewrite_method"] == "none"
    check_chat_answer(choice["message"]["content"], extra, client)


def test_follow_up_is_rewritten(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": "How many passengers did the Riverside tram line carry?"},
        {"role": "assistant", "content": "9,000 [1]."},
        {"role": "user", "content": "and how long does the trip to the campus take?"},
    ]}).json()
    extra = body["groundqa"]
    assert extra["question"] == "and how long does the trip to the campus take?"
    if extra["rewritten"]:
        assert extra["searched"] != extra["question"]
        assert body["choices"][0]["message"]["content"].startswith(
            f"*Searched for: {extra['searched']}*")
    check_chat_answer(body["choices"][0]["message"]["content"], extra, client)


def test_streamed_chat_completion_matches_the_whole_one(client: TestClient) -> None:
    request = {"messages": [{"role": "user", "content": QUESTION}]}
    response = client.post("/v1/chat/completions", json={**request, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == ("message", "[DONE]")
    chunks = [data for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("groundqa" not in c for c in chunks[:-1]) and "groundqa" in chunks[-1]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    whole = client.post("/v1/chat/completions", json=request).json()
    assert content == whole["choices"][0]["message"]["content"]
    check_chat_answer(content, chunks[-1]["groundqa"], client)


@pytest.mark.parametrize(("payload", "code"), [
    ({"messages": []}, "invalid_request"),
    ({"messages": [{"role": "system", "content": "be brief"}]}, "invalid_request"),
    ({"messages": [{"role": "user", "content": "   "}]}, "invalid_request"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request"),
    ({"messages": [{"role": "user", "content": "x" * 1001}]}, "invalid_request"),
    ({"messages": [{"role": "user", "content": "hi?"}], "top_k": 0}, "invalid_top_k"),
    ({"messages": [{"role": "user", "content": "hi?"}],
      "filters": {"published_from": "2024", "published_to": "2023"}}, "invalid_request"),
    ({}, "invalid_request"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_errors_are_json_before_any_stream(client: TestClient, payload: dict[str, Any],
                                                code: str, stream: bool) -> None:
    assert_error(client.post("/v1/chat/completions", json={**payload, "stream": stream}), 422,
                 code)
