"""Liveness, readiness, metrics, the chat page and the OpenAPI contract."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from index.embedding import HashEmbedder
from service.core import QAService
from tests.http.conftest import (
    API_KEY,
    ARTICLES,
    MAX_BODY_BYTES,
    AppClient,
    assert_error,
    http_settings,
)

# The API's operations: method, path → (operationId, tag). Changing one breaks generated clients.
OPERATIONS = {
    ("GET", "/healthz"): ("healthz_healthz_get", "ops"),
    ("GET", "/readyz"): ("readyz_readyz_get", "ops"),
    ("GET", "/metrics"): ("prometheus_metrics_metrics_get", "ops"),
    ("POST", "/v1/ask"): ("ask_v1_ask_post", "qa"),
    ("POST", "/v1/ask/stream"): ("ask_stream_v1_ask_stream_post", "qa"),
    ("POST", "/v1/search"): ("search_v1_search_post", "qa"),
    ("GET", "/v1/documents"): ("list_documents_v1_documents_get", "documents"),
    ("POST", "/v1/documents"): ("add_document_v1_documents_post", "documents"),
    ("GET", "/v1/documents/{doc_id}"): ("get_document_v1_documents__doc_id__get", "documents"),
    ("DELETE", "/v1/documents/{doc_id}"): ("delete_document_v1_documents__doc_id__delete",
                                           "documents"),
    ("GET", "/v1/models"): ("list_models_v1_models_get", "chat"),
    ("POST", "/v1/chat/completions"): ("chat_completions_v1_chat_completions_post", "chat"),
}


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_the_loaded_index(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["documents"] == len(ARTICLES)
    assert body["chunks"] >= len(ARTICLES) and body["index_version"]


def test_readyz_is_503_without_an_index(empty_service: QAService,
                                        make_client: AppClient) -> None:
    client = make_client(empty_service)
    assert_error(client.get("/readyz"), 503, "not_ready")
    assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_stages_and_outcomes(service: QAService,
                                                    make_client: AppClient) -> None:
    client = make_client(service)  # a new app: its own registry
    client.post("/v1/ask", json={"question": "How much did the harbour repairs cost?"})
    client.get("/v1/documents/nope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'groundqa_requests_total{method="POST",route="/v1/ask",status="200"} 1.0' in text
    # Counted by route template, not by the path asked for.
    assert 'route="/v1/documents/{doc_id}",status="404"' in text
    assert 'groundqa_ask_stage_seconds_count{stage="retrieve"} 1.0' in text
    assert "groundqa_request_seconds_bucket" in text
    outcomes = [line for line in text.splitlines()
                if line.startswith(("groundqa_answers_total ", "groundqa_abstentions_total{"))]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in outcomes) == 1.0


def test_chat_page_and_assets(client: TestClient, service: QAService,
                              make_client: AppClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert "{{AUTH_REQUIRED}}" not in page.text
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert_error(client.get("/static/missing.js"), 404, "not_found")
    keyed = make_client(service, api_keys=["k"])
    assert keyed.get("/").text != page.text  # the page is told a key is needed


def test_openapi_operations_are_stable(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    found = {(method.upper(), path): (op["operationId"], op["tags"][0])
             for path, item in schema["paths"].items() for method, op in item.items()}
    assert found == OPERATIONS
    for item in schema["paths"].values():
        for op in item.values():
            # Each route's one-line docstring is its description.
            assert op["description"] and "\n" not in op["description"], op["operationId"]
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse")
    add = schema["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert set(add) == {"application/json", "multipart/form-data"}
    assert "text/event-stream" in schema["paths"]["/v1/ask"]["post"]["responses"]["200"][
        "content"]


def test_metrics_labels_stay_bounded_whatever_the_paths(service: QAService,
                                                        make_client: AppClient) -> None:
    """401, 413 and 404 responses to made-up paths share one label (they used to add one
    series per path: 20,000 requests, 20,000 series)."""
    keyed = make_client(service, api_keys=[API_KEY])
    for i in range(30):
        keyed.get(f"/v1/nothing-{i}")                                   # 401, no route
        keyed.get(f"/v1/documents/doc-{i}")                             # 401, a route
        keyed.request(f"BREW{i}", f"/made/up/{i}")                      # odd method too
    open_client = make_client(service)
    for i in range(30):
        open_client.get(f"/v1/missing-{i}")                             # 404, no route
        open_client.post(f"/v1/else-{i}", content=b"x" * (MAX_BODY_BYTES + 1),
                         headers={"content-type": "application/json"})  # 413, no route
    for client in (keyed, open_client):
        text = client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
        routes = set(re.findall(r'groundqa_requests_total\{[^}]*route="([^"]*)"', text))
        methods = set(re.findall(r'groundqa_requests_total\{[^}]*method="([^"]*)"', text))
        assert "unmatched" in routes, routes
        assert not any(re.search(r"-\d+$|/\d+$", route) for route in routes), routes
        assert len(routes) <= 4 and methods <= {"GET", "POST", "other"}, (routes, methods)
    keyed_text = keyed.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    # A refused request to a real route is counted under that route's template.
    assert 'method="GET",route="/v1/documents/{doc_id}",status="401"} 30.0' in keyed_text


def test_warm_up_loads_the_reader_before_the_first_question(http_index: Path, tmp_path: Path,
                                                            empty_service: QAService) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(http_index, data_dir)
    fresh = QAService(http_settings(data_dir), HashEmbedder())
    assert fresh.reader._session is None  # loads on first use
    version = fresh.live().snapshot.version  # type: ignore[union-attr]
    fresh.warm_up()
    assert fresh.reader._session is not None
    assert fresh.live().snapshot.version == version  # type: ignore[union-attr]
    empty_service.warm_up()  # nothing to ask: a no-op, no error
