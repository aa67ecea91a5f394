"""Every error the app can return: one JSON envelope, the documented status and code.

Domain errors that are slow or awkward to provoke for real (a busy index writer, a damaged
index) are raised by a stand-in service through the ``get_service`` dependency override; the
rest are provoked through the real service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from corpus.errors import (
    DocumentLoadError,
    DocumentNotFound,
    EmbeddingMismatch,
    EmptyQuestion,
    GroundQAError,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    InsufficientStorage,
    InvalidRequest,
    ModelNotFound,
    StoreUnavailable,
)
from service.core import QAService
from service.http.app import create_app
from service.http.deps import get_service
from service.http.errors import STATUS_BY_ERROR, routing_error
from tests.http.conftest import (
    API_KEY,
    MAX_BODY_BYTES,
    AppClient,
    assert_error,
    http_settings,
    sse_events,
)

# The public contract: each domain error's status and code (clients switch on the code).
DOMAIN_ERRORS = [
    (DocumentLoadError, 422, "document_unreadable"),
    (IndexNotFound, 503, "index_not_found"),
    (IndexCorrupt, 503, "index_corrupt"),
    (EmbeddingMismatch, 409, "embedding_mismatch"),
    (DocumentNotFound, 404, "document_not_found"),
    (EmptyQuestion, 422, "empty_question"),
    (InvalidRequest, 422, "invalid_request"),
    (IndexBusy, 409, "index_busy"),
    (ModelNotFound, 503, "model_not_found"),
    (InsufficientStorage, 507, "insufficient_storage"),
    (StoreUnavailable, 503, "store_unavailable"),
    (GroundQAError, 400, "groundqa_error"),
]
# A request to every operation that reaches the service.
SERVICE_CALLS = [
    ("POST", "/v1/ask", {"json": {"question": "q?"}}),
    ("POST", "/v1/search", {"json": {"query": "q"}}),
    ("GET", "/v1/documents", {}),
    ("GET", "/v1/documents/a", {}),
    ("POST", "/v1/documents", {"json": {"text": "some words here"}}),
    ("DELETE", "/v1/documents/a", {}),
]


class FailingService:
    """Stands in for QAService: every call raises ``error``."""

    def __init__(self, real: QAService, error: Exception) -> None:
        self.settings = real.settings
        self.generator = None
        self.ready = True
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return fail


def test_every_domain_error_has_a_status() -> None:
    assert {cls: STATUS_BY_ERROR[cls] for cls, _, _ in DOMAIN_ERRORS} == {
        cls: status for cls, status, _ in DOMAIN_ERRORS}
    assert set(STATUS_BY_ERROR) == {cls for cls, _, _ in DOMAIN_ERRORS}
    assert {cls.code for cls, _, _ in DOMAIN_ERRORS} == {code for _, _, code in DOMAIN_ERRORS}


@pytest.mark.parametrize(("error", "status", "code"), DOMAIN_ERRORS)
@pytest.mark.parametrize(("method", "path", "kwargs"), SERVICE_CALLS)
def test_domain_errors_map_to_their_status(service: QAService, make_client: AppClient,
                                           error: type[GroundQAError], status: int, code: str,
                                           method: str, path: str,
                                           kwargs: dict[str, Any]) -> None:
    client = make_client(service)
    failing = FailingService(service, error(f"{code} happened"))
    client.app.dependency_overrides[get_service] = lambda: failing  # type: ignore[attr-defined]
    body = assert_error(client.request(method, path, **kwargs), status, code)
    assert body["error"]["message"] == f"{code} happened"


def test_a_subclass_takes_its_base_status(service: QAService, make_client: AppClient) -> None:
    class DocumentVanished(DocumentNotFound):
        code = "document_vanished"

    client = make_client(service)
    failing = FailingService(service, DocumentVanished("gone"))
    client.app.dependency_overrides[get_service] = lambda: failing  # type: ignore[attr-defined]
    assert_error(client.get("/v1/documents/a"), 404, "document_vanished")


@pytest.mark.parametrize(("method", "path", "kwargs"), SERVICE_CALLS)
def test_unexpected_errors_are_a_bare_500(service: QAService, make_client: AppClient,
                                          method: str, path: str, kwargs: dict[str, Any],
                                          caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(service, raise_server_exceptions=False)
    failing = FailingService(service, RuntimeError("secret detail /etc/passwd"))
    client.app.dependency_overrides[get_service] = lambda: failing  # type: ignore[attr-defined]
    response = client.request(method, path, **kwargs)
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and body["error"]["message"]
    assert "secret detail" in caplog.text  # logged with its traceback for the operator


def test_errors_inside_a_chat_stream_are_sent_in_band(service: QAService,
                                                      make_client: AppClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(service)

    def busy(*args: Any, **kwargs: Any) -> None:
        raise IndexBusy("the index is being rewritten")

    monkeypatch.setattr(service, "ask", busy)
    response = client.post("/v1/chat/completions", json={
        "stream": True, "messages": [{"role": "user", "content": "q?"}]})
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-2:] == [
        ("message", {"error": {"code": "index_busy", "message": "the index is being rewritten"}}),
        ("message", "[DONE]")]


# -- auth ---------------------------------------------------------------------------------------
def _every_route(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    routes = [(method.upper(), path.replace("{doc_id}", "harbour-2024"))
              for path, item in schema["paths"].items() for method in item
              if path != "/healthz"]  # the one open operation (see the test below)
    extra = [("GET", "/docs"), ("GET", "/redoc"), ("GET", "/openapi.json"),
             ("GET", "/docs/oauth2-redirect"), ("GET", "/nowhere"), ("PUT", "/v1/ask")]
    return sorted(set(routes + extra))


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {API_KEY}",
                                           f"Bearer {API_KEY}x", "Bearer "])
def test_every_route_needs_the_key(service: QAService, make_client: AppClient,
                                   authorization: str | None) -> None:
    client = make_client(service, api_keys=[API_KEY, "second-key"])
    headers = {"Authorization": authorization} if authorization else {}
    routes = _every_route(client)
    assert len(routes) > 14
    for method, path in routes:
        # Refused before anything else is looked at: body, size, content type.
        response = client.request(method, path, headers=headers, content=b"{bad",
                                  params={"x": "1"})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_key_opens_the_routes_and_some_stay_open(service: QAService,
                                                     make_client: AppClient) -> None:
    client = make_client(service, api_keys=[API_KEY, "second-key"])
    for key in (API_KEY, "second-key"):
        for scheme in ("Bearer", "bearer"):
            headers = {"Authorization": f"{scheme} {key}"}
            assert client.get("/v1/documents", headers=headers).status_code == 200
            assert client.post("/v1/ask", headers=headers,
                               json={"question": "q?"}).status_code == 200
    for path in ("/healthz", "/", "/static/app.js"):
        assert client.get(path).status_code == 200, path


# -- limits, content types, routing ---------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/ask", "/v1/search", "/v1/chat/completions",
                                  "/v1/ask/stream"])
def test_oversized_bodies_are_413(client: TestClient, path: str) -> None:
    body = b'{"question": "' + b"a" * MAX_BODY_BYTES + b'"}'
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(response, 413, "body_too_large")
    chunked = client.post(path, content=iter([body[:1000], body[1000:]]),
                          headers={"content-type": "application/json"})
    assert_error(chunked, 413, "body_too_large")


def test_invalid_content_length_is_400(client: TestClient) -> None:
    response = client.post("/v1/ask", content=b'{"question": "q?"}',
                           headers={"content-type": "application/json",
                                    "content-length": "many"})
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
@pytest.mark.parametrize("path", ["/v1/ask", "/v1/search", "/v1/chat/completions",
                                  "/v1/ask/stream"])
def test_json_routes_refuse_other_content_types(client: TestClient, path: str,
                                                content_type: str) -> None:
    response = client.post(path, content=b'{"question": "q?"}',
                           headers={"content-type": content_type})
    assert_error(response, 415, "unsupported_media_type")


def test_json_suffix_content_types_are_json(client: TestClient) -> None:
    response = client.post("/v1/search", content=b'{"query": "tram"}',
                           headers={"content-type": "application/vnd.api+json"})
    assert response.status_code == 200


def test_unknown_paths_and_methods(client: TestClient) -> None:
    assert_error(client.get("/v2/ask"), 404, "not_found")
    response = client.put("/v1/documents")
    assert_error(response, 405, "method_not_allowed")
    # Every route at the path, not the first; HEAD wherever GET is.
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert client.patch("/v1/documents/x").headers["allow"] == "DELETE, GET, HEAD"
    assert client.get("/v1/ask").headers["allow"] == "POST"


def test_other_starlette_errors_keep_the_envelope() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    response = asyncio.run(routing_error(request, StarletteHTTPException(418, "teapot")))
    assert response.status_code == 418
    assert response.body == b'{"error":{"code":"http_error","message":"teapot"}}'


def test_cors_preflight_for_a_configured_origin(service: QAService,
                                                make_client: AppClient) -> None:
    client = make_client(service, api_keys=[API_KEY], cors_origins=["https://news.example"])
    response = client.options("/v1/ask", headers={
        "Origin": "https://news.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://news.example"
    other = client.options("/v1/ask", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other.headers


# -- startup ------------------------------------------------------------------------------------
def test_a_missing_index_fails_the_start_in_one_line(tmp_path: Path) -> None:
    app = create_app(http_settings(tmp_path / "nothing"))
    with pytest.raises(IndexNotFound), TestClient(app):
        pass
    assert app.state.startup_error.startswith(f"no index in {tmp_path / 'nothing'}")


def test_the_lifespan_failure_message_is_one_line(tmp_path: Path) -> None:
    app = create_app(http_settings(tmp_path / "nothing"))
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "app": app, "state": {}, "asgi": {"version": "3.0"}}
    with pytest.raises(IndexNotFound):
        asyncio.run(app(scope, receive, send))
    (failed,) = [m for m in sent if m["type"] == "lifespan.startup.failed"]
    assert failed["message"].startswith("cannot start groundqa: no index in ")
    assert "Traceback" not in failed["message"] and "\n" not in failed["message"]
