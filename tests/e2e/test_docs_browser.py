"""``/docs`` and ``/redoc`` render in a real headless Chromium with every request to anything but
the groundqa server blocked: the API documentation needs no network (no CDN, no web fonts).

Debian's /usr/bin/chromium driven by Playwright, as in ``test_web.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_KEY, Server

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.e2e, pytest.mark.model, pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def offline_page(browser: Any, e2e_server: Server) -> Iterator[tuple[Any, list[str]]]:
    """A page whose requests reach only the server; the others are aborted and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  extra_http_headers={"Authorization": f"Bearer {API_KEY}"})
    blocked: list[str] = []

    def only_the_server(route: Any) -> None:
        url = route.request.url
        if url.startswith(e2e_server.url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    yield page, blocked
    context.close()


def _operations(server: Server) -> list[tuple[str, str]]:
    schema = httpx.get(server.url + "/openapi.json", headers=server.headers, timeout=30).json()
    return [(method.upper(), path) for path, item in schema["paths"].items() for method in item]


def test_swagger_ui_lists_every_operation_offline(offline_page: tuple[Any, list[str]],
                                                  e2e_server: Server) -> None:
    page, blocked = offline_page
    page.goto(e2e_server.url + "/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    expected = _operations(e2e_server)
    assert len(expected) > 10
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    assert sorted(p.replace("\u200b", "").strip() for p in shown) == \
        sorted(path for _, path in expected)
    methods = [m.strip().upper() for m in page.locator(".opblock-summary-method")
               .all_inner_texts()]
    assert sorted(methods) == sorted(method for method, _ in expected)
    assert page.title() == "groundqa - Swagger UI"
    assert blocked == []


def test_redoc_lists_the_operations_offline(offline_page: tuple[Any, list[str]],
                                            e2e_server: Server) -> None:
    page, blocked = offline_page
    page.goto(e2e_server.url + "/redoc")
    operations = page.locator("[data-section-id*='operation/']")
    operations.first.wait_for(timeout=30_000)
    schema = httpx.get(e2e_server.url + "/openapi.json", headers=e2e_server.headers,
                       timeout=30).json()
    operation_ids = {op["operationId"] for item in schema["paths"].values()
                     for op in item.values()}
    assert len(operation_ids) > 10
    # One section per operation, each named by its operationId.
    shown = {section.split("operation/", 1)[1]
             for section in operations.evaluate_all(
                 "nodes => nodes.map(n => n.getAttribute('data-section-id'))")}
    assert shown == operation_ids
    summary = schema["paths"]["/v1/ask"]["post"]["summary"]
    assert page.locator("h2", has_text=summary).count() >= 1
    assert blocked == []
