"""Chat content never carries raw markup (issue 14, item 11).

A third-party frontend may render the Markdown ``content`` of a chat completion as HTML, so
everything quoted into it (article sentences, titles, outlets, the question searched) arrives
HTML-escaped; the ``groundqa`` field keeps the exact text the offsets index into.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http.conftest import sse_events

MARKUP = '<img src=x onerror="alert(1)">'
ARTICLE = {
    "doc_id": "markup-note", "format": "text", "outlet": "Quay <b>Post</b>",
    "title": "Ferry <script>alert(2)</script> timetable changes", "published": "2024-02-01",
    "text": "Ferry timetable changes\n\n"
            f"The Northgate ferry will sail 14 times a day {MARKUP} from the first of May, "
            "the operator said. Tickets stay at the old price."}
QUESTION = "How many times a day will the Northgate ferry sail from the first of May?"


def streamed_content(client: TestClient, payload: dict[str, Any]) -> str:
    """The content of a streamed chat completion, its deltas joined."""
    response = client.post("/v1/chat/completions", json={**payload, "stream": True})
    assert response.status_code == 200, response.text
    return "".join(data["choices"][0]["delta"].get("content", "")
                   for _, data in sse_events(response.text)
                   if isinstance(data, dict) and data.get("choices"))


@pytest.mark.parametrize("stream", [False, True])
def test_quoted_article_markup_is_escaped(writable_client: TestClient, stream: bool) -> None:
    added = writable_client.post("/v1/documents", json=ARTICLE)
    assert added.status_code == 200, added.text
    payload = {"messages": [{"role": "user", "content": QUESTION}], "min_confidence": 0.0,
               "filters": {"doc_ids": ["markup-note"]}}
    if stream:
        content = streamed_content(writable_client, payload)
    else:
        response = writable_client.post("/v1/chat/completions", json=payload)
        assert response.status_code == 200, response.text
        content = response.json()["choices"][0]["message"]["content"]
        extra = response.json()["groundqa"]
        assert extra["citations"], extra
        quotes = " ".join(c["quote"] for c in extra["citations"])
        assert "onerror" in quotes  # the field keeps the verbatim quote
    assert "onerror" in content and "<img" not in content, content
    assert "&lt;img" in content
    assert "<script" not in content and "<b>" not in content, content


@pytest.mark.parametrize("stream", [False, True])
def test_the_searched_question_is_escaped(client: TestClient, stream: bool) -> None:
    payload = {"messages": [
        {"role": "user", "content": "How many passengers did the Riverside tram line carry?"},
        {"role": "assistant", "content": "9,000 [1]."},
        {"role": "user", "content": f"and what about {MARKUP}?"}]}
    if stream:
        content = streamed_content(client, payload)
    else:
        response = client.post("/v1/chat/completions", json=payload)
        assert response.status_code == 200, response.text
        content = response.json()["choices"][0]["message"]["content"]
    assert "Searched for" in content, content
    assert "<img" not in content and "&lt;img" in content, content
