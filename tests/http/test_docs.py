"""``/docs`` and ``/redoc`` work offline: every asset they reference is served by the app itself
(no CDN, no web font, no outside validator), and the assets sit behind the key like the pages."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from service.core import QAService
from tests.http.conftest import API_KEY, AppClient, assert_error

#: Anything the page would fetch: src/href attributes, CSS url(...), url: '...' in the script.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)"""
                       r"""|\burl:\s*'([^']+)'|spec-url\s*=\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return [next(g for g in match.groups() if g) for match in REFERENCE.finditer(html)]


@pytest.mark.parametrize(("page", "expected_assets"), [
    ("/docs", {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css",
               "/docs-assets/favicon.png", "/openapi.json"}),
    ("/redoc", {"/docs-assets/redoc.standalone.js", "/docs-assets/favicon.png",
                "/openapi.json"}),
])
def test_docs_pages_load_everything_from_the_app(client: TestClient, page: str,
                                                 expected_assets: set[str]) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), \
        "the page names an outside URL"
    references = set(_references(html))
    assert references == expected_assets
    for reference in references:
        asset = client.get(urljoin(page, reference))
        assert asset.status_code == 200, reference
        assert len(asset.content) > 500, reference
    schema = client.get("/openapi.json").json()
    assert "/v1/ask" in schema["paths"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_let_the_browser_load_from_the_app_only(client: TestClient,
                                                            page: str) -> None:
    policy = client.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "img-src", "font-src", "connect-src"):
        assert "http" not in directives[name] and "*" not in directives[name], name


def test_swagger_ui_does_not_call_the_outside_validator(client: TestClient) -> None:
    # Swagger UI's default validator badge posts the schema to validator.swagger.io.
    assert '"validatorUrl": null' in client.get("/docs").text


def test_docs_assets_need_the_key_like_the_pages(service: QAService,
                                                 make_client: AppClient) -> None:
    client = make_client(service, api_keys=[API_KEY])
    for path in ("/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js"):
        assert_error(client.get(path), 401, "unauthorized")
        assert client.get(path, headers={"Authorization": f"Bearer {API_KEY}"}).status_code \
            == 200


def test_unknown_docs_asset_is_a_json_404(client: TestClient) -> None:
    assert_error(client.get("/docs-assets/nothing.js"), 404, "not_found")
    assert_error(client.get("/docs-assets/%2e%2e/docs.py"), 404, "not_found")
