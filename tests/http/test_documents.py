"""``/v1/documents``: list, fetch, add (JSON and multipart), replace, delete, and their errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http.conftest import ARTICLES, MAX_UPLOAD_BYTES, assert_error

NOTE = ("Ferry timetable changes in winter\n\n"
        "The island ferry will sail four times a day from November instead of six, the "
        "operator said on Friday. The last boat will leave the mainland at 7 pm.")


def test_list_documents_gives_metadata_only(writable_client: TestClient) -> None:
    body = writable_client.get("/v1/documents").json()
    assert body["index_version"]
    listed = {d["doc_id"]: d for d in body["documents"]}
    assert {a["doc_id"] for a in ARTICLES} <= set(listed)
    harbour = listed["harbour-2024"]
    assert harbour["title"] == "Lakeside harbour reopens after repairs"
    assert harbour["outlet"] == "Coastal Ledger" and harbour["published"] == "2024-03-12"
    assert "text" not in harbour and harbour["length"] > 0 and harbour["content_hash"]


def test_get_document_gives_the_cleaned_text(writable_client: TestClient) -> None:
    body = writable_client.get("/v1/documents/orchard-2022").json()
    assert body["doc_id"] == "orchard-2022" and body["length"] == len(body["text"])
    assert "late frost in April" in body["text"]


def test_unknown_document_is_404(writable_client: TestClient) -> None:
    assert_error(writable_client.get("/v1/documents/nope"), 404, "document_not_found")
    assert_error(writable_client.delete("/v1/documents/nope"), 404, "document_not_found")


def test_add_replace_unchanged_delete(writable_client: TestClient) -> None:
    document = {"text": NOTE, "doc_id": "ferry-2024", "title": "Ferry timetable",
                "outlet": "Island News", "published": "2024-10-04"}
    added = writable_client.post("/v1/documents", json=document)
    assert added.status_code == 200, added.text
    assert added.json()["status"] == "added" and added.json()["doc_id"] == "ferry-2024"
    version = added.json()["index_version"]
    assert writable_client.get("/readyz").json()["index_version"] == version
    fetched = writable_client.get("/v1/documents/ferry-2024").json()
    assert fetched["outlet"] == "Island News" and "four times a day" in fetched["text"]
    hits = writable_client.post("/v1/search", json={"query": "island ferry timetable"}).json()
    assert hits["passages"][0]["doc_id"] == "ferry-2024"

    again = writable_client.post("/v1/documents", json=document).json()
    assert again["status"] == "unchanged"
    changed = writable_client.post("/v1/documents", json={**document, "title": "New title"})
    assert changed.json()["status"] == "replaced"

    deleted = writable_client.delete("/v1/documents/ferry-2024")
    assert deleted.status_code == 200
    assert deleted.json() == {"doc_id": "ferry-2024", "status": "deleted",
                              "index_version": deleted.json()["index_version"], "warnings": []}
    assert_error(writable_client.get("/v1/documents/ferry-2024"), 404, "document_not_found")
    listed = {d["doc_id"] for d in writable_client.get("/v1/documents").json()["documents"]}
    assert "ferry-2024" not in listed and {a["doc_id"] for a in ARTICLES} <= listed


@pytest.mark.parametrize(("fmt", "text", "expected"), [
    ("markdown", "# Ferry news\n\n" + NOTE.split("\n\n", 1)[1] + "\n\n**Bold** closing words "
     "for the [island](https://example.org) readers.", "four times a day"),
    ("html", "<html><head><title>Ferry news</title></head><body><article><h1>Ferry news</h1>"
     f"<p>{NOTE.split(chr(10) * 2, 1)[1]}</p><p>Passengers were told to book ahead for the "
     "busy weekend crossings in December.</p></article></body></html>", "four times a day"),
])
def test_markdown_and_html_are_cleaned(writable_client: TestClient, fmt: str, text: str,
                                       expected: str) -> None:
    added = writable_client.post("/v1/documents", json={"text": text, "format": fmt})
    assert added.status_code == 200, added.text
    doc_id = added.json()["doc_id"]
    assert doc_id.startswith("doc-")  # no id given: one derived from the content
    body = writable_client.get(f"/v1/documents/{doc_id}").json()
    assert expected in body["text"] and "<p>" not in body["text"] and "**" not in body["text"]
    writable_client.delete(f"/v1/documents/{doc_id}")


def test_multipart_upload(writable_client: TestClient) -> None:
    response = writable_client.post(
        "/v1/documents", files={"file": ("ferry notes.md", NOTE.encode(), "text/markdown")})
    assert response.status_code == 200, response.text
    doc_id = response.json()["doc_id"]
    assert doc_id.startswith("ferry-notes-")
    assert "four times a day" in writable_client.get(f"/v1/documents/{doc_id}").json()["text"]
    latin1 = writable_client.post("/v1/documents", files={
        "file": ("caf\xe9.txt", NOTE.replace("island", "\xeele").encode("latin-1"))})
    assert latin1.status_code == 200
    assert latin1.json()["warnings"] and "not valid UTF-8" in latin1.json()["warnings"][0]
    for change in (response, latin1):
        writable_client.delete(f"/v1/documents/{change.json()['doc_id']}")


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"json": {"text": ""}}, 422, "invalid_request"),
    ({"json": {"text": "hello there", "format": "pdf"}}, 422, "invalid_request"),
    ({"json": {"text": "hello there", "doc_id": "../etc/passwd"}}, 422, "invalid_request"),
    ({"json": {"text": "hello there", "published": "last week"}}, 422, "invalid_request"),
    ({"json": {"text": "hello there", "colour": "red"}}, 422, "invalid_request"),
    ({"json": ["text"]}, 422, "invalid_request"),
    ({"json": {"text": "too short"}}, 422, "document_unreadable"),
    ({"json": {"text": "<html><body><nav>menu</nav></body></html>", "format": "html"}}, 422,
     "document_unreadable"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400,
     "malformed_json"),
    ({"content": b'{"text": "\xff"}', "headers": {"content-type": "application/json"}}, 400,
     "malformed_json"),
    ({"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, 400,
     "malformed_json"),
    ({"content": b"plain words", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ({"content": b"plain words"}, 415, "unsupported_media_type"),
    ({"files": {"file": ("note.bin", b"\x00\x01\x02binary")}}, 422, "document_unreadable"),
    ({"files": {"file": ("note.txt", b"\x00\x01\x02binary")}}, 422, "document_unreadable"),
    ({"files": {"file": ("note.txt", b"   ")}}, 422, "document_unreadable"),
    ({"files": {"other": ("note.txt", NOTE.encode())}}, 422, "invalid_request"),
    ({"data": {"file": "not a file"}, "files": {"x": ("a.txt", b"a")}}, 422, "invalid_request"),
])
def test_bad_documents_get_a_json_4xx(writable_client: TestClient, kwargs: dict[str, Any],
                                      status: int, code: str) -> None:
    before = writable_client.get("/v1/documents").json()
    assert_error(writable_client.post("/v1/documents", **kwargs), status, code)
    assert writable_client.get("/v1/documents").json() == before


def test_too_large_upload_is_413(writable_client: TestClient) -> None:
    big = b"word " * (MAX_UPLOAD_BYTES // 5 + 10)
    assert_error(writable_client.post("/v1/documents", files={"file": ("big.txt", big)}), 413,
                 "body_too_large")
    # Sent without a Content-Length (chunked): counted as it arrives.
    response = writable_client.post("/v1/documents", content=iter([big[:70_000], big[70_000:]]),
                                    headers={"content-type": "application/json"})
    assert_error(response, 413, "body_too_large")
