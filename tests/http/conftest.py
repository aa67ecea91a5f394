"""The app in-process (FastAPI TestClient) around a real QAService on a small fake-embedded index.

The index holds four short made-up articles embedded with the deterministic ``HashEmbedder``,
so building it takes well under a second and no model is loaded. Read-only tests share one
service; tests that add or delete documents get their own copy of the index.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from corpus.loader import Document, parse_document
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.config import Settings
from service.core import QAService
from service.http.app import create_app

API_KEY = "http-test-key"
MAX_BODY_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 128 * 1024

ARTICLES: list[dict[str, str]] = [
    {"doc_id": "harbour-2024", "title": "Lakeside harbour reopens after repairs",
     "outlet": "Coastal Ledger", "published": "2024-03-12",
     "text": "Lakeside harbour reopens after repairs\n\n"
             "The Lakeside harbour reopened on Tuesday after eight months of repairs to its "
             "breakwater. The harbour authority said the work cost 12 million euros, most of it "
             "paid by the regional government. Harbour master Ines Varga said that 40 fishing "
             "boats had returned to their moorings by the evening.\n\n"
             "The breakwater was damaged by a storm in the winter of 2023. Repairs were delayed "
             "twice because the contractor could not find enough granite blocks."},
    {"doc_id": "library-2023", "title": "City library extends its opening hours",
     "outlet": "Town Crier", "published": "2023-09",
     "text": "City library extends its opening hours\n\n"
             "The central library of Brackenford will stay open until 10 pm on weekdays from "
             "October, the city council announced on Monday. Librarian Tomas Wren said that "
             "students had asked for quiet study rooms in the evening.\n\n"
             "The longer hours will cost the city 300,000 pounds a year. The council will review "
             "the trial after six months and publish the number of evening visitors."},
    {"doc_id": "orchard-2022", "title": "Apple harvest falls after a late frost",
     "outlet": "Farm Weekly", "published": "2022-10-05",
     "text": "Apple harvest falls after a late frost\n\n"
             "Orchards in the Elder valley picked 30 percent fewer apples this autumn after a "
             "late frost in April killed many blossoms. Grower Maria Lind said she had lost "
             "almost half of her crop of Bramley apples.\n\n"
             "Cider makers in the valley expect to import fruit for the first time in a decade. "
             "Prices at the farm gate rose by a fifth in September."},
    {"doc_id": "tram-2024", "title": "New tram line carries 9,000 passengers on its first day",
     "outlet": "Metro Daily", "published": "2024-06-01",
     "text": "New tram line carries 9,000 passengers on its first day\n\n"
             "The new Riverside tram line carried 9,000 passengers on its first day of service, "
             "the transport company said on Saturday. The line links the railway station with "
             "the university campus in eleven minutes.\n\n"
             "Engineers spent two years laying the track. The company plans a second line to "
             "the airport, which it says could open in 2027."},
]
ANSWERABLE = [
    "How much did the repairs of the Lakeside harbour cost?",
    "How many passengers did the Riverside tram line carry on its first day?",
    "Until what time will the central library of Brackenford stay open?",
]
OFF_TOPIC = "What is the recipe for a classic French onion soup?"


def article_documents() -> list[Document]:
    """The articles as the loader cleans them."""
    return [parse_document(a["text"].encode(), name=f"{a['doc_id']}.txt", suffix=".txt",
                           doc_id=a["doc_id"], source=f"test:{a['doc_id']}",
                           metadata={k: a[k] for k in ("title", "outlet", "published")})
            for a in ARTICLES]


def http_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an in-process app: the fake embedder, small body limits, no key."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "embedder": "hash", "reload_check_seconds": 0.0,
        "max_body_bytes": MAX_BODY_BYTES, "max_upload_bytes": MAX_UPLOAD_BYTES,
        "api_keys": [], "cors_origins": [], "llm_base_url": None, **overrides}
    return Settings(**values)


@pytest.fixture(scope="session")
def http_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four articles, indexed once per session with the fake embedder (never served)."""
    data_dir = tmp_path_factory.mktemp("http-index") / "data"
    IndexWriter(data_dir, HashEmbedder()).apply(add=article_documents())
    return data_dir


@pytest.fixture(scope="session")
def service(http_index: Path, tmp_path_factory: pytest.TempPathFactory) -> QAService:
    """One service for read-only tests, on its own copy of the index."""
    data_dir = tmp_path_factory.mktemp("http-readonly") / "data"
    shutil.copytree(http_index, data_dir)
    return QAService(http_settings(data_dir), HashEmbedder())


@pytest.fixture(scope="module")
def writable_service(http_index: Path, tmp_path_factory: pytest.TempPathFactory) -> QAService:
    """A service whose index a test module may change (add, replace, delete documents)."""
    data_dir = tmp_path_factory.mktemp("http-writable") / "data"
    shutil.copytree(http_index, data_dir)
    return QAService(http_settings(data_dir), HashEmbedder())


@pytest.fixture(scope="session")
def empty_service(tmp_path_factory: pytest.TempPathFactory) -> QAService:
    """A service started on an empty data directory (GROUNDQA_ON_MISSING_INDEX=empty)."""
    data_dir = tmp_path_factory.mktemp("http-empty") / "data"
    return QAService(http_settings(data_dir, on_missing_index="empty"), HashEmbedder())


AppClient = Callable[..., TestClient]


@pytest.fixture
def make_client() -> Iterator[AppClient]:
    """``make_client(service, **settings)``: a TestClient (lifespan run) for an app built
    around ``service`` with these settings; closed after the test."""
    opened: list[TestClient] = []

    def make(svc: QAService, *, raise_server_exceptions: bool = True,
             **overrides: Any) -> TestClient:
        app = create_app(http_settings(svc.settings.data_dir, **overrides), service=svc)
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(service: QAService, make_client: AppClient) -> TestClient:
    """The app around the read-only service, no API key."""
    return make_client(service)


@pytest.fixture
def writable_client(writable_service: QAService, make_client: AppClient) -> TestClient:
    """The app around the module's writable service, no API key."""
    return make_client(writable_service)


# ---------------------------------------------------------------------------------------------
# Contract checks shared by the tests


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the JSON error envelope with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def check_answer_contract(body: dict[str, Any], client: TestClient) -> None:
    """The guarantees AskResponse documents, whatever the answer says."""
    answer = body["answer"]
    assert isinstance(answer, str) and answer
    ids = [c["id"] for c in body["citations"]]
    assert len(ids) == len(set(ids))
    for marker in re.findall(r"\[(\d+)\]", answer):
        assert int(marker) in ids, f"marker [{marker}] does not resolve: {answer!r}"
    for sentence in body["sentences"]:
        assert 0 <= sentence["start"] < sentence["end"] <= len(answer)
        for cite in sentence["citations"]:
            assert cite["id"] in ids
            assert cite["support"]["label"] in ("supported", "partial", "unsupported")
    texts: dict[str, str] = {}
    for citation in body["citations"]:
        doc_id = citation["doc_id"]
        if doc_id not in texts:
            fetched = client.get(f"/v1/documents/{doc_id}")
            assert fetched.status_code == 200, fetched.text
            texts[doc_id] = fetched.json()["text"]
        span = citation["source_span"]
        assert citation["quote"] == texts[doc_id][span["start"]:span["end"]]
        assert citation["title"] and citation["outlet"]
    for passage in body["passages"]:
        span = passage["source_span"]
        assert 0 <= span["start"] < span["end"]
    if body["answerable"]:
        assert body["abstain_reason"] is None and body["citations"]
    else:
        assert body["abstain_reason"] and not body["citations"]
        assert "[" not in answer or not re.search(r"\[\d+\]", answer)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """``(event name, decoded data)`` of each frame of a Server-Sent Events body."""
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name = re.search(r"^event: (.*)$", frame, re.M)
        data = "\n".join(line[6:] for line in frame.split("\n") if line.startswith("data: "))
        events.append((name.group(1) if name else "message",
                       data if data == "[DONE]" else json.loads(data)))
    return events


def assert_markdown_carries_answer(content: str, extra: dict[str, Any]) -> None:
    """The chat Markdown holds every answer sentence (emphasis and escapes aside), leads with
    the short answer in bold, and bolds it inside its quote."""
    plain = re.sub(r"\\(.)", r"\1", content.replace("**", ""))
    for sentence in extra["sentences"]:
        text = extra["answer"][sentence["start"]:sentence["end"]]
        assert html.escape(text, quote=False) in plain or text in plain, text
    if not extra["sentences"]:
        assert html.escape(extra["answer"], quote=False) in plain
    short = extra.get("short_answer")
    if short:
        assert content.startswith("**") or content.split("\n\n", 1)[1].startswith("**")
        assert content.count("**") >= 4, "the short answer is bold, also inside its quote"
