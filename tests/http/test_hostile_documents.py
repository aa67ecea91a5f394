"""Issue 16: no document a user can send gets a 5xx or damages what is already indexed.

The body from the issue (lone surrogates in HTML, which once reached lxml's missing HTML
cleaner and gave a 500) and arbitrary unicode in every format, sent as raw JSON bytes so lone
surrogates (``\\ud8xx`` escapes) arrive as they would from any client, and as file uploads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from service.core import QAService
from service.http.app import create_app
from tests.http.conftest import assert_error, http_settings

ISSUE_16_BODY = (
    b'{"title": "X", "text": "\\ud878\\udd76a\\ud8c9\\udd89\\u00fcf\\u00bc\\u00f8X\\ud9f2\\udf64'
    b'\\u00b3\\ud8ca\\udc0d", "format": "html", "doc_id": "probe1"}')
KEEPER = {"doc_id": "keeper", "title": "Keeper", "outlet": "Control Desk", "published": "2024",
          "text": "The control article stays indexed while hostile documents arrive. It has "
                  "enough words to be indexed, and its text must never change."}

_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
_ANY_CHAR = st.characters(codec=None, exclude_categories=())
_WORDS = st.sampled_from(["the", "harbour", "reopened", "after", "repairs", "cost", "12",
                          "million", "euros", "said", "on", "Tuesday.", "\n\n", " ", "#", "*"])
_MARKUP = st.sampled_from([
    "<p>", "</p>", "<html><body>", "</body></html>", "<article>", "<h1>", "</h1>", "<br/>",
    "<script>alert(1)</script>", "<style>p{}</style>", "<!--", "-->", "<![CDATA[", "]]>",
    "<?xml version='1.0'?>", "<!DOCTYPE html>", "&amp;", "&#0;", "&#xd800;", "&#x10FFFF;",
    "&nbsp;", "<table><tr><td>", "<a href='javascript:x'>", "<svg><foreignObject>", "<meta "
    "charset='utf-16'>", "<title>", "</title>", "<", ">", "\"", "'", "\\", "\x00", "\x0c"])
# Whole sentences now and then, so a fair share of the documents is indexed, not refused.
_PROSE = st.just(" The harbour authority said on Tuesday that the repairs to the breakwater had "
                 "cost twelve million euros in all. ")
TEXTS = st.lists(st.one_of(_ANY_CHAR, _SURROGATES, _WORDS, _MARKUP, _PROSE),
                 max_size=60).map("".join)
FORMATS = st.sampled_from(["text", "markdown", "html"])


def raw_json(document: dict[str, Any]) -> bytes:
    """JSON bytes with non-ASCII escaped, so a lone surrogate becomes a ``\\udxxx`` escape."""
    return json.dumps(document, ensure_ascii=True).encode("ascii")


def post_raw(client: TestClient, body: bytes) -> Any:
    return client.post("/v1/documents", content=body,
                       headers={"content-type": "application/json"})


@pytest.fixture(scope="module")
def hostile_client(writable_service: QAService) -> Iterator[TestClient]:
    """One app for the module (hypothesis runs many examples through it), with the keeper."""
    app = create_app(http_settings(writable_service.settings.data_dir), service=writable_service)
    with TestClient(app, raise_server_exceptions=False) as client:
        added = client.post("/v1/documents", json=KEEPER)
        assert added.status_code == 200, added.text
        yield client


def keeper_is_intact(client: TestClient) -> None:
    listed = client.get("/v1/documents")
    assert listed.status_code == 200
    assert "keeper" in {d["doc_id"] for d in listed.json()["documents"]}
    fetched = client.get("/v1/documents/keeper")
    assert fetched.status_code == 200 and fetched.json()["text"] == KEEPER["text"]


def check_outcome(response: Any) -> None:
    """2xx with a document id, or a 4xx with the JSON envelope; never a 5xx."""
    assert response.status_code < 500, response.text
    if response.status_code < 300:
        assert response.json()["status"] in ("added", "replaced", "unchanged")
    else:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


def test_the_body_from_issue_16(hostile_client: TestClient) -> None:
    response = post_raw(hostile_client, ISSUE_16_BODY)
    check_outcome(response)
    if response.status_code >= 400:
        assert_error(response, 422, "document_unreadable")
    keeper_is_intact(hostile_client)


def test_an_extractor_failure_is_a_422_not_a_500(hostile_client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import trafilatura

    def missing_cleaner(*args: Any, **kwargs: Any) -> None:
        raise ImportError("lxml.html.clean module is now a separate project lxml_html_clean")

    monkeypatch.setattr(trafilatura, "extract", missing_cleaner)
    body = assert_error(post_raw(hostile_client, ISSUE_16_BODY), 422, "document_unreadable")
    assert body["error"]["message"] == "probe1: the HTML could not be parsed (ImportError)"
    upload = hostile_client.post("/v1/documents",
                                 files={"file": ("page.html", b"<p>words and more words</p>")})
    assert_error(upload, 422, "document_unreadable")
    keeper_is_intact(hostile_client)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEXTS, fmt=FORMATS, title=st.one_of(st.none(), TEXTS),
       doc_id=st.one_of(st.none(), st.just("fuzzed")))
def test_any_unicode_in_any_format_is_2xx_or_4xx(hostile_client: TestClient, text: str,
                                                 fmt: str, title: str | None,
                                                 doc_id: str | None) -> None:
    document: dict[str, Any] = {"text": text, "format": fmt}
    if title is not None:
        document["title"] = title
    if doc_id is not None:
        document["doc_id"] = doc_id
    response = post_raw(hostile_client, raw_json(document))
    event(f"status {response.status_code}")
    check_outcome(response)
    keeper_is_intact(hostile_client)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=st.one_of(TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=300)),
       suffix=st.sampled_from([".txt", ".md", ".html", ".htm", ".markdown", ""]))
def test_any_uploaded_bytes_are_2xx_or_4xx(hostile_client: TestClient, content: bytes,
                                           suffix: str) -> None:
    response = hostile_client.post("/v1/documents", files={"file": (f"upload{suffix}", content)})
    event(f"status {response.status_code}")
    check_outcome(response)
    keeper_is_intact(hostile_client)
