"""The OpenAPI schema and the server agree (issue 14, item 9).

Schemathesis found requests the schema allows but the server refused (``top_k: 38.0``, the
date ``7396-25``, a blank-looking question), requests it refused differently on two routes
(chat took ``top_k: "5"``), uploads it handled silently wrong (two ``file`` parts, a PDF named
``.txt``), a confusing answer to JSON sent without a content type, 405 on HEAD, and no
security scheme in the schema when keys are required.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core import QAService
from service.schemas import VISIBLE_CHARACTER
from tests.http.conftest import API_KEY, AppClient, assert_error

CHAT = {"messages": [{"role": "user", "content": "How much did the harbour repairs cost?"}]}
ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/ask", {"question": "How much did the harbour repairs cost?"}),
    ("/v1/search", {"query": "harbour repairs"}),
    ("/v1/chat/completions", CHAT),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_integral_numbers_are_integers_on_every_route(client: TestClient, path: str,
                                                      body: dict[str, Any]) -> None:
    # JSON Schema's "integer" includes 38.0; the schema says integer, so 38.0 is one.
    response = client.post(path, json={**body, "top_k": 3.0})
    assert response.status_code == 200, response.text
    if path == "/v1/search":
        assert len(response.json()["passages"]) <= 3
    for bad in ("5", 2.5, True):  # the same refusals on all three routes (chat took "5")
        assert_error(client.post(path, json={**body, "top_k": bad}), 422, "invalid_top_k")


@pytest.mark.parametrize("value", ["7396-25", "2023-02-30", "2023-13", "0000", "20230201",
                                   "2023-2-01"])
@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_dates_that_are_not_dates_are_refused_everywhere(client: TestClient, path: str,
                                                         body: dict[str, Any],
                                                         value: str) -> None:
    response = client.post(path, json={**body, "filters": {"published_from": value}})
    assert_error(response, 422, "invalid_request")


def test_real_dates_are_accepted_and_the_schema_says_date(client: TestClient) -> None:
    for value in ("2024", "2024-02", "2024-02-29"):
        response = client.post("/v1/search", json={"query": "harbour", "filters": {
            "published_from": value, "published_to": value}})
        assert response.status_code == 200, (value, response.text)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    date = schema["FiltersIn"]["properties"]["published_from"]
    assert {"type": "string", "format": "date"} in date["anyOf"][0]["anyOf"]
    month = date["anyOf"][0]["anyOf"][0]["pattern"]
    assert re.search(month, "2024-12") and not re.search(month, "7396-25")


def test_question_limits_are_in_the_schema_and_hold(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    question = schema["AskRequest"]["properties"]["question"]
    assert question["maxLength"] == 1000 and question["pattern"] == VISIBLE_CHARACTER
    assert schema["SearchRequest"]["properties"]["query"]["maxLength"] == 1000
    # Over the limit as sent, though shorter once whitespace is collapsed: refused.
    spaced = "harbour " + " " * 995 + "cost?"
    assert_error(client.post("/v1/ask", json={"question": spaced}), 422, "invalid_request")
    # Only invisible characters: the schema's pattern and the server both refuse it.
    invisible = "\u200b\u2060 \ufeff"
    assert not re.search(VISIBLE_CHARACTER, invisible)
    assert_error(client.post("/v1/ask", json={"question": invisible}), 422, "empty_question")


def test_json_without_a_content_type_is_415_saying_so(client: TestClient) -> None:
    for path, body in ROUTES:
        response = client.post(path, content=b'{"question": "x?"}', headers={
            "content-type": ""})
        body = assert_error(response, 415, "unsupported_media_type")
        assert "Content-Type" in body["error"]["message"]


def test_head_is_answered_on_get_routes(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/v1/documents", "/v1/models", "/metrics",
                 "/openapi.json", "/"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == \
            get.headers["content-type"], path
    assert client.head("/v1/documents/nope").status_code == 404
    not_allowed = client.put("/v1/documents")
    assert_error(not_allowed, 405, "method_not_allowed")
    assert not_allowed.headers["allow"] == "GET, HEAD, POST"


def test_two_file_parts_are_refused_and_index_nothing(writable_client: TestClient) -> None:
    before = writable_client.get("/v1/documents").json()
    files = [("file", ("first.txt", b"The first upload says the ferry sails at noon. " * 3)),
             ("file", ("second.txt", b"The second upload says the ferry sails at one. " * 3))]
    response = writable_client.post("/v1/documents", files=files)
    assert_error(response, 422, "invalid_request")
    assert "one 'file'" in response.json()["error"]["message"]
    assert writable_client.get("/v1/documents").json() == before


@pytest.mark.parametrize(("name", "raw"), [
    ("report.txt", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
                   b"BT /F1 12 Tf (The harbour cost 12 million) Tj ET\n" * 4),
    ("notes.md", b"PK\x03\x04" + b"word/document.xml The harbour reopened " * 8),
])
def test_binary_formats_are_refused_whatever_their_name(writable_client: TestClient,
                                                        name: str, raw: bytes) -> None:
    before = writable_client.get("/v1/documents").json()
    response = writable_client.post("/v1/documents", files={"file": (name, raw)})
    body = assert_error(response, 422, "document_unreadable")
    assert name in body["error"]["message"]
    assert writable_client.get("/v1/documents").json() == before


def test_the_schema_declares_bearer_auth_when_keys_are_set(service: QAService,
                                                           make_client: AppClient) -> None:
    open_schema = make_client(service).get("/openapi.json").json()
    assert "security" not in open_schema
    assert "securitySchemes" not in open_schema.get("components", {})
    keyed = make_client(service, api_keys=[API_KEY])
    schema = keyed.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer",
        "description": "One of the server's GROUNDQA_API_KEYS."}
    assert schema["security"] == [{"bearerAuth": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    for path, item in schema["paths"].items():
        for operation in item.values():
            if path != "/healthz":
                assert "401" in operation["responses"], (path, operation["operationId"])
