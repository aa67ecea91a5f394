"""End to end: the official ``openai`` client and raw SSE against a real uvicorn server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import API_KEY
from tests.http.conftest import assert_markdown_carries_answer

pytestmark = [pytest.mark.e2e, pytest.mark.model]

QUESTION = "How many IS militants are near the Tajik border?"
OFF_TOPIC = "What is the recipe for a classic French onion soup?"


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=API_KEY, timeout=60,
                         max_retries=0)


@pytest.fixture(scope="module")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c


def check_answer(content: str, extra: dict[str, Any], http: httpx.Client) -> None:
    """Every marker in the Markdown resolves; every quote is the cited span of its article."""
    ids = {c["id"] for c in extra["citations"]}
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", content)}
    assert markers, content
    assert markers <= ids and markers == ids, (markers, ids)
    assert "**Sources**" in content
    for citation in extra["citations"]:
        assert citation["outlet"] in content
        text = http.get(f"/v1/documents/{citation['doc_id']}").json()["text"]
        span = citation["source_span"]
        assert citation["quote"] == text[span["start"]:span["end"]]
    assert_markdown_carries_answer(content, extra)  # the raw answer, then the source list


def test_models_list_and_auth(client: openai.OpenAI, server_url: str) -> None:
    assert [m.id for m in client.models.list()] == ["groundqa"]
    wrong = openai.OpenAI(base_url=f"{server_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="groundqa",
                                      messages=[{"role": "user", "content": QUESTION}])
    # The page and its assets need no key; the API behind them does.
    assert httpx.get(f"{server_url}/").status_code == 200
    assert httpx.get(f"{server_url}/static/app.js").status_code == 200
    assert httpx.get(f"{server_url}/v1/documents").status_code == 401


# These tests pin the chat mechanics (Markdown, streaming, follow-ups), not the abstention bar:
# they ask with min_confidence 0, which answers whenever the reader proposes a span.
ANSWER_ALWAYS = {"min_confidence": 0.0}


def test_non_streaming_answer_is_cited_markdown(client: openai.OpenAI,
                                                http: httpx.Client) -> None:
    completion = client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}], temperature=0.2,
        extra_body=ANSWER_ALWAYS)
    assert completion.object == "chat.completion" and completion.model == "groundqa"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    extra = completion.model_extra["groundqa"]
    assert extra["answerable"] and not extra["abstained"] and extra["generator"] == "extractive"
    assert extra["searched"] == QUESTION and not extra["rewritten"]
    check_answer(choice.message.content, extra, http)
    same = http.post("/v1/ask", json={"question": QUESTION, **ANSWER_ALWAYS}).json()
    assert [c["quote"] for c in same["citations"]] == [c["quote"] for c in extra["citations"]]


def test_streaming_answer_ends_with_citations(client: openai.OpenAI, http: httpx.Client) -> None:
    stream = client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}], stream=True,
        extra_body=ANSWER_ALWAYS)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 5  # the answer arrives in pieces
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    extra = final.model_extra["groundqa"]
    assert all("groundqa" not in (c.model_extra or {}) for c in chunks[:-1])
    check_answer(content, extra, http)
    for chunk in chunks:  # markers are never split across chunks
        piece = chunk.choices[0].delta.content or ""
        assert piece.count("[") == piece.count("]")
    whole = client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}],
        extra_body=ANSWER_ALWAYS)
    assert whole.choices[0].message.content == content


def test_follow_up_is_answered_in_context(client: openai.OpenAI, http: httpx.Client) -> None:
    first = "How many IS militants are in Afghanistan?"
    opening = client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": first}],
        extra_body=ANSWER_ALWAYS)
    messages = [{"role": "user", "content": first},
                {"role": "assistant", "content": opening.choices[0].message.content},
                {"role": "user", "content": "and how many of them are near the Tajik border?"}]
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(model="groundqa", messages=messages,
                                                         stream=True, extra_body=ANSWER_ALWAYS))
            content = "".join(c.choices[0].delta.content or "" for c in chunks)
            extra = chunks[-1].model_extra["groundqa"]
        else:
            completion = client.chat.completions.create(model="groundqa", messages=messages,
                                                        extra_body=ANSWER_ALWAYS)
            content = completion.choices[0].message.content
            extra = completion.model_extra["groundqa"]
        assert extra["rewritten"] and extra["rewrite_method"] == "deterministic"
        assert extra["searched"] == QUESTION
        assert extra["question"] == "and how many of them are near the Tajik border?"
        assert content.startswith(f"*Searched for: {QUESTION}*")
        assert extra["answerable"]
        check_answer(content, extra, http)


def test_abstention_is_a_sentence_and_a_flag(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": OFF_TOPIC}])
    content = completion.choices[0].message.content
    extra = completion.model_extra["groundqa"]
    assert extra["abstained"] and not extra["answerable"] and extra["abstain_reason"]
    assert content == extra["answer"] and content.endswith(".") and "[" not in content
    assert not extra["citations"]
    chunks = list(client.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": OFF_TOPIC}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content
    assert chunks[-1].model_extra["groundqa"]["abstained"]


def test_chat_errors_are_json(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.chat.completions.create(model="groundqa",
                                       messages=[{"role": "system", "content": "be brief"}])
    assert raised.value.body["code"] == "invalid_request"  # type: ignore[index]


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    events = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        name = re.search(r"^event: (.*)$", frame, re.M)
        data = "\n".join(line[6:] for line in frame.split("\n") if line.startswith("data: "))
        events.append((name.group(1) if name else "message", json.loads(data)))
    return events


@pytest.mark.parametrize("route", ["/v1/ask/stream", "/v1/ask"])
def test_ask_streams_events(http: httpx.Client, route: str) -> None:
    response = http.post(route, json={"question": QUESTION, "stream": True, **ANSWER_ALWAYS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"answer"} and len(names) > 4
    done = events[-1][1]
    assert events[0][1]["passages"] == done["passages"]
    assert "".join(data["delta"] for name, data in events if name == "answer") == done["answer"]
    assert events[-2][1]["citations"] == done["citations"] and done["answerable"]
    ids = {c["id"] for c in done["citations"]}
    assert {int(m) for m in re.findall(r"\[(\d+)\]", done["answer"])} == ids


def test_ask_stream_refuses_bad_input_before_streaming(http: httpx.Client) -> None:
    response = http.post("/v1/ask/stream", json={"question": "   "})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_question"
