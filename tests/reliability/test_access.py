"""Access: API keys on every route but health, CORS for configured origins only, no path escapes.

Decision (README "Reliability"): with keys configured, ``/docs``, ``/redoc`` and
``/openapi.json`` need a key too — the schema maps every route an attacker could try, and a
deployment that wants public docs can publish the schema file. What stays open is liveness
(``/healthz``) and the static chat page, which holds no data and whose API calls need the key.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from service.http.deps import OPEN_PATHS as _OPEN_PATHS
from service.http.web import OPEN_PREFIXES
from tests.reliability.conftest import ALLOWED_ORIGIN, API_KEY, Server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

# The only routes that answer without a key; adding one is a decision, so it fails here first.
EXPECTED_OPEN = {"/healthz", "/"}
EXTRA_ROUTES = [("GET", "/docs"), ("GET", "/redoc"), ("GET", "/openapi.json"),
                ("GET", "/docs-assets/swagger-ui.css"), ("GET", "/metrics"), ("GET", "/readyz")]


def _routes(server: Server) -> list[tuple[str, str]]:
    with server.client() as client:
        schema = client.get("/openapi.json").json()
    routes = [(method.upper(), path.replace("{doc_id}", "001_3a98059f2f43f3e4"))
              for path, item in schema["paths"].items() for method in item
              if method in ("get", "post", "put", "patch", "delete")]
    return sorted(set(routes + EXTRA_ROUTES))


def test_open_routes_are_only_health_and_the_page() -> None:
    assert set(_OPEN_PATHS) == EXPECTED_OPEN
    assert all(prefix.startswith("/static/") for prefix in OPEN_PREFIXES)


def test_every_route_but_health_needs_a_valid_key(keyed_server: Server) -> None:
    routes = _routes(keyed_server)
    assert ("GET", "/metrics") in routes and ("POST", "/v1/ask") in routes
    bad_credentials = [
        {}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer  {API_KEY}"},
        {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": f"Bearer {API_KEY[:-1]}"}, {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"}, {"X-API-Key": API_KEY},
        {"Authorization": f"Bearer {API_KEY.upper()}"},
    ]
    checked = 0
    for method, path in routes:
        if path in EXPECTED_OPEN:
            continue
        for headers in bad_credentials:
            response = httpx.request(method, keyed_server.url + path, headers=headers,
                                     json={"question": "What happened?"}, timeout=60)
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Afghan" not in response.text
            checked += 1
    assert checked >= 10 * 12
    # The same requests with the key are not refused for auth.
    with keyed_server.client() as client:
        for method, path in routes:
            if method == "GET":
                assert client.get(path).status_code == 200, path
        assert client.post("/v1/ask", json={"question": "Who closed an embassy?"}).is_success
        assert httpx.get(f"{keyed_server.url}/v1/ask",
                         headers={"authorization": f"bearer {API_KEY}"}).status_code == 405
    assert httpx.get(keyed_server.url + "/healthz").status_code == 200


def test_cors_allows_only_the_configured_origin(keyed_server: Server) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = httpx.options(keyed_server.url + "/v1/ask",
                            headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    for origin in ("https://evil.example", "https://newsroom.example.evil.example",
                   "http://newsroom.example", "null"):
        refused = httpx.options(keyed_server.url + "/v1/ask",
                                headers={"Origin": origin, **preflight})
        assert refused.status_code == 400, origin
        assert "access-control-allow-origin" not in refused.headers
        # A simple cross-origin request still needs the key, and gets no CORS grant.
        simple = httpx.get(keyed_server.url + "/v1/documents", headers={"Origin": origin})
        assert simple.status_code == 401
        assert "access-control-allow-origin" not in simple.headers
    with keyed_server.client() as client:
        granted = client.get("/v1/documents", headers={"Origin": ALLOWED_ORIGIN})
        assert granted.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "access-control-allow-origin" not in client.get(
            "/v1/documents", headers={"Origin": "https://evil.example"}).headers


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("filename", [
    "../../etc/passwd", "../../../../tmp/escape.txt", "/etc/cron.d/evil.txt",
    "..\\..\\windows\\evil.txt", "sub/../../escape.md", "....//....//escape.txt",
    "%2e%2e%2f%2e%2e%2fescape.txt", "CURRENT", "../CURRENT",
    "versions/v999999/manifest.json",
])
def test_uploads_cannot_write_outside_the_data_directory(keyed_server: Server,
                                                         filename: str) -> None:
    data_dir = keyed_server.data_dir
    outside = data_dir.parent
    outside_before = {p.name for p in outside.iterdir()}
    current_before = (data_dir / "CURRENT").read_text()
    body = (b"Escape attempt report\n\nInvestigators in Termez said on Monday that a file "
            b"upload tried to climb out of the data directory of a question answering service.")
    with keyed_server.client() as client:
        response = client.post("/v1/documents", files={"file": (filename, body)})
        assert response.status_code in (200, 422), response.text
        assert {p.name for p in outside.iterdir()} == outside_before
        assert not Path("/tmp/escape.txt").exists() and not Path("/etc/cron.d/evil.txt").exists()
        if response.status_code == 200:
            doc_id = response.json()["doc_id"]
            assert "/" not in doc_id and "\\" not in doc_id and not doc_id.startswith(".")
            assert (data_dir / "CURRENT").read_text() != current_before
            assert client.delete(f"/v1/documents/{doc_id}").status_code == 200
        names = _tree(data_dir)
        assert all(n in ("CURRENT", "writer.lock", "versions") or n.startswith("versions/v")
                   for n in names), sorted(names)
        assert os.path.realpath(data_dir / "versions") == str((data_dir / "versions").resolve())


@pytest.mark.parametrize("doc_id", ["..", "../CURRENT", "%2e%2e%2fCURRENT", "..%2f..%2fetc",
                                    "versions", "CURRENT", "' OR 1=1 --", "*"])
def test_doc_id_tricks_find_nothing_and_delete_nothing(keyed_server: Server,
                                                       doc_id: str) -> None:
    with keyed_server.client() as client:
        before = client.get("/v1/documents").json()
        assert client.get(f"/v1/documents/{doc_id}").status_code in (404, 405)
        assert client.delete(f"/v1/documents/{doc_id}").status_code in (404, 405)
        assert client.get("/v1/documents").json() == before
    assert (keyed_server.data_dir / "CURRENT").exists()
