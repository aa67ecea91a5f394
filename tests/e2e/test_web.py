"""The chat page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

CI needs ``apt-get install -y chromium`` and the dev extra (``playwright``); Playwright's own
browser download (``playwright install``) is never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_KEY

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "How big a grant did Russia promise Tajikistan for a border outpost?"

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
def page(browser: Any, server_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server_url + "/")
    yield page
    # Nothing but the groundqa server is ever contacted (no CDN, no fonts).
    assert all(url.startswith(server_url) or url.startswith("data:") for url in requests), \
        requests
    context.close()


def test_ask_open_citation_and_see_the_quote_highlighted(page: Any, server_url: str,
                                                         tmp_path: Path) -> None:
    key = page.locator("#api-key")
    assert key.is_visible()  # GROUNDQA_API_KEYS is set on this server
    key.fill(API_KEY)
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    answer = page.locator(".message.assistant.done").last
    answer.wait_for(timeout=60_000)
    assert "abstain" not in (answer.get_attribute("class") or "")
    markers = answer.locator(".answer button.marker")
    assert markers.count() >= 1
    assert answer.locator(".sources li").count() >= 1

    api = httpx.post(f"{server_url}/v1/ask", json={"question": QUESTION}, timeout=60,
                     headers={"Authorization": f"Bearer {API_KEY}"}).json()
    # The short answer leads, and is highlighted inside its quote; the quote follows in full
    # with a visible support label.
    short = api["short_answer"]
    assert answer.locator(".short-answer .short-text").inner_text() == short["text"]
    assert answer.locator(".answer mark.short-in-quote").first.inner_text() == short["text"]
    first = api["citations"][0]
    assert first["quote"] in answer.locator(".answer").inner_text()
    assert answer.locator(".answer .support").first.inner_text() in (
        "supported", "partial", "unsupported")

    markers.first.click()
    quote = page.locator("#cit-quote")
    quote.wait_for()
    assert quote.inner_text() == first["quote"]
    assert page.locator("#cit-outlet").inner_text() == first["outlet"]
    assert page.locator("#cit-date").inner_text()
    page.click("#open-article")
    highlight = page.locator("#art-text mark#highlight")
    highlight.wait_for()
    assert highlight.text_content() == first["quote"]
    assert page.locator("#art-title").inner_text() == first["title"]
    page.screenshot(path=str(tmp_path / "chat-citation.png"), full_page=True)
    assert (tmp_path / "chat-citation.png").stat().st_size > 10_000

    # A follow-up in the same chat is searched as a standalone question.
    page.fill("#question", "and what about Uzbekistan?")
    page.click("#ask-button")
    page.locator(".message.assistant.done").nth(1).wait_for(timeout=60_000)
    searched = page.locator(".message.assistant.done").nth(1).locator(".searched")
    assert "Uzbekistan" in searched.inner_text()


def test_abstention_looks_different(page: Any, tmp_path: Path) -> None:
    page.fill("#api-key", API_KEY)
    page.fill("#question", "What is the recipe for a classic French onion soup?")
    page.click("#ask-button")
    message = page.locator(".message.assistant.done").last
    message.wait_for(timeout=60_000)
    assert "abstain" in (message.get_attribute("class") or "")
    assert message.locator(".abstain-label").inner_text() == "No answer in the articles"
    assert message.locator("button.marker").count() == 0
    page.screenshot(path=str(tmp_path / "chat-abstention.png"))


def test_missing_key_is_reported(page: Any) -> None:
    page.fill("#api-key", "")
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    message = page.locator(".message.assistant.error")
    message.wait_for(timeout=30_000)
    assert "API key" in message.inner_text()
