"""The chat page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

CI needs ``apt-get install -y chromium`` and the dev extra (``playwright``); Playwright's own
browser download (``playwright install``) is never used.

Each behaviour is checked at desktop (1280×900) and phone (390×844) size, and a screenshot of
each is written to ``$GROUNDQA_SCREENSHOTS`` (default: a pytest temporary folder); the paths are
printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_KEY
from tests.servers import Server, copy_index, run_server
from tests.service import conftest as scripted

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "How big a grant did Russia promise Tajikistan for a border outpost?"
#: Two articles of the demo corpus give different figures for this, both with inferred dates.
CONFLICT_QUESTION = "How many militants are concentrated near the Tajik-Afghan border?"
SCREENSHOTS_ENV = "GROUNDQA_SCREENSHOTS"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}

pytestmark = [
    pytest.mark.e2e, pytest.mark.model, pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install -y chromium)"),
]

scripted_llm = scripted.scripted_llm  # the scripted OpenAI-compatible upstream, on loopback


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


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$GROUNDQA_SCREENSHOTS`` or a temporary folder."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page: Any, folder: Path, name: str) -> Path:
    """A screenshot of what the user sees; its path is printed."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    print(f"screenshot: {path}")
    return path


@contextmanager
def open_page(browser: Any, server_url: str, size: str) -> Iterator[Any]:
    """The chat page at a viewport size; nothing but the groundqa server may be contacted."""
    phone = size == "phone"
    context = browser.new_context(viewport=VIEWPORTS[size], is_mobile=phone, has_touch=phone)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server_url + "/")
    try:
        yield page
    finally:
        context.close()
    # Nothing but the groundqa server is ever contacted (no CDN, no fonts).
    assert all(url.startswith(server_url) or url.startswith("data:") for url in requests), \
        requests


@pytest.fixture
def page(browser: Any, server_url: str) -> Iterator[Any]:
    with open_page(browser, server_url, "desktop") as page:
        yield page


def ask(page: Any, question: str) -> Any:
    """Type a question, send it, and wait for its answer to be rendered."""
    before = page.locator(".message.assistant.done").count()
    page.fill("#question", question)
    page.click("#ask-button")
    answer = page.locator(".message.assistant.done").nth(before)
    answer.wait_for(timeout=90_000)
    return answer


def box_in_view(page: Any, selector_or_locator: Any) -> dict[str, float]:
    """The element's box, and whether it lies inside the window and every clipping ancestor."""
    locator = (page.locator(selector_or_locator) if isinstance(selector_or_locator, str)
               else selector_or_locator)
    result: dict[str, float] = locator.evaluate("""(node) => {
        const r = node.getBoundingClientRect();
        let top = 0, bottom = window.innerHeight;
        for (let p = node.parentElement; p; p = p.parentElement) {
            const style = getComputedStyle(p);
            if (/(auto|scroll|hidden)/.test(style.overflowY)) {
                const c = p.getBoundingClientRect();
                top = Math.max(top, c.top); bottom = Math.min(bottom, c.bottom);
            }
        }
        return {top: r.top, bottom: r.bottom, height: r.height, visibleTop: top,
                visibleBottom: bottom,
                inView: r.height > 0 && r.top >= top - 1 && r.bottom <= bottom + 1};
    }""")
    return result


def api_answer(server: Server, question: str) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/ask", json={"question": question}, timeout=90,
                          headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ------------------------------------------------------------------ the original walk-through


def test_ask_open_citation_and_see_the_quote_highlighted(page: Any, server_url: str,
                                                         screenshots: Path) -> None:
    key = page.locator("#api-key")
    assert key.is_visible()  # GROUNDQA_API_KEYS is set on this server
    key.fill(API_KEY)
    answer = ask(page, QUESTION)
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
    shoot(page, screenshots, "desktop-citation-article")

    # A follow-up in the same chat is searched as a standalone question.
    follow_up = ask(page, "and what about Uzbekistan?")
    assert "Uzbekistan" in follow_up.locator(".searched").inner_text()


def test_abstention_looks_different(page: Any, screenshots: Path) -> None:
    page.fill("#api-key", API_KEY)
    message = ask(page, "What is the recipe for a classic French onion soup?")
    assert "abstain" in (message.get_attribute("class") or "")
    assert message.locator(".abstain-label").inner_text() == "No answer in the articles"
    assert message.locator("button.marker").count() == 0
    shoot(page, screenshots, "desktop-abstention")


def test_missing_key_is_reported(page: Any) -> None:
    page.fill("#api-key", "")
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    message = page.locator(".message.assistant.error")
    message.wait_for(timeout=30_000)
    assert "API key" in message.inner_text()


# ------------------------------------------------------------------ issue 15: the page, both sizes


@pytest.fixture(scope="module")
def open_server(seed_index_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                scripted_llm: scripted.ScriptedLLM) -> Iterator[Server]:
    """groundqa with keys off, writing its answers with the scripted upstream model."""
    root = tmp_path_factory.mktemp("web-open")
    data_dir = copy_index(seed_index_dir, root / "data")
    with run_server(data_dir, root / "server.log", llm_base_url=scripted_llm.base_url,
                    llm_model="scripted", llm_timeout_seconds="10") as server:
        yield server


def two_quotes_from_one_article(request: dict[str, Any]) -> scripted.Reply:
    """An answer that quotes two passages of the same article, a whole sentence from each."""
    user = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
    found = re.findall(r'<passage id="(\d+)" source="[^"]*" title="([^"]*)">\n(.*?)\n</passage>',
                       user, flags=re.DOTALL)
    by_title: dict[str, list[tuple[int, str]]] = {}
    for number, title, text in found:
        by_title.setdefault(title, []).append((int(number), html.unescape(text)))
    group = next((g for g in by_title.values() if len(g) >= 2), None)
    assert group is not None, f"no article has two passages: {list(by_title)}"
    (n1, t1), (n2, t2) = group[:2]

    def own_sentence(text: str, other: str) -> str:
        for line in text.splitlines():
            for sentence in re.split(r"(?<=[a-z0-9][.!?])\s+(?=[A-Z])", line.strip()):
                if len(sentence.split()) >= 8 and sentence.endswith(".") \
                        and sentence not in other:
                    return sentence[:-1]
        raise AssertionError(f"no sentence of its own in passage: {text[:200]!r}")

    return scripted.Reply(f"{own_sentence(t1, t2)} [{n1}]. {own_sentence(t2, t1)} [{n2}].")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_key_row_only_when_the_server_wants_a_key(browser: Any, e2e_server: Server,
                                                  open_server: Server, size: str,
                                                  screenshots: Path) -> None:
    with open_page(browser, e2e_server.url, size) as page:
        assert page.locator("#key-row").is_visible()
        assert page.locator("#api-key").bounding_box() is not None
        shoot(page, screenshots, f"{size}-key-row-keys-on")
    with open_page(browser, open_server.url, size) as page:
        page.locator("#question").wait_for()
        assert not page.locator("#key-row").is_visible()
        assert page.locator("#key-row").bounding_box() is None
        shoot(page, screenshots, f"{size}-key-row-keys-off")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_sources_list_each_article_once(browser: Any, open_server: Server,
                                        scripted_llm: scripted.ScriptedLLM, size: str,
                                        screenshots: Path) -> None:
    scripted_llm.script = two_quotes_from_one_article
    with open_page(browser, open_server.url, size) as page:
        answer = ask(page, CONFLICT_QUESTION)
        assert answer.get_attribute("data-generator") == "llm:scripted"
        markers = answer.locator(".answer button.marker")
        cited = {markers.nth(i).inner_text() for i in range(markers.count())}
        assert len(cited) >= 2, (answer.inner_text(), scripted_llm.requests[-1:])
        sources = answer.locator(".sources li")
        assert sources.count() == 1, answer.locator(".sources").inner_text()
        # The one line carries both markers, each opening its own quote.
        assert sources.first.locator("button.marker").count() == len(cited)
        answer.scroll_into_view_if_needed()
        shoot(page, screenshots, f"{size}-sources-one-line-per-article")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_answer_in_view_labels_conflicts_and_inferred_dates(browser: Any, e2e_server: Server,
                                                            size: str,
                                                            screenshots: Path) -> None:
    api = api_answer(e2e_server, CONFLICT_QUESTION)
    assert api["conflicts"] and api["answerable"], api["answer"]
    with open_page(browser, e2e_server.url, size) as page:
        page.fill("#api-key", API_KEY)
        ask(page, QUESTION)  # a first answer, so the second has to be scrolled to
        answer = ask(page, CONFLICT_QUESTION)
        page.wait_for_timeout(300)  # let a smooth scroll (if any) settle

        # The new answer is scrolled into view: all of it when it fits, else its start.
        box = box_in_view(page, answer)
        room = box["visibleBottom"] - box["visibleTop"]
        if box["height"] <= room:
            assert box["inView"], box
        else:
            assert box["visibleTop"] - 1 <= box["top"] <= box["visibleTop"] + 80, box
        assert box_in_view(page, answer.locator(".short-answer"))["inView"]
        shoot(page, screenshots, f"{size}-new-answer-in-view")

        # Support labels are on screen, no hover needed: one badge per cited quote sentence.
        badges = answer.locator(".answer .support:not(.flag-note)")
        expected = sum(len(s["citations"]) for s in api["sentences"][1:])
        assert badges.count() == expected >= 1
        for i in range(badges.count()):
            assert badges.nth(i).is_visible()
            assert badges.nth(i).inner_text() in ("supported", "partial", "unsupported")

        # Conflicting figures are shown, each with the citation that gives it.
        conflicts = answer.locator(".conflicts")
        assert conflicts.is_visible()
        assert "Sources differ" in conflicts.inner_text()
        for conflict in api["conflicts"]:
            for value in conflict["values"]:
                assert value["value"] in conflicts.inner_text()
                assert conflicts.locator(
                    f"button.marker[data-citation='{value['citation']}']").count() == 1
        conflicts.scroll_into_view_if_needed()
        shoot(page, screenshots, f"{size}-conflicts")

        # Inferred dates are marked the same way wherever they appear.
        inferred = [c for c in api["citations"] if c["published_inferred"]]
        assert inferred, "the conflict question cites articles with inferred dates"
        inferred_docs = {c["doc_id"] for c in inferred}
        sources = answer.locator(".sources li")
        for i in range(sources.count()):
            item = sources.nth(i)
            marked = item.locator(".inferred").count()
            assert marked == (item.get_attribute("data-doc-id") in inferred_docs), \
                item.inner_text()
        leads = answer.locator(".answer .sentence .inferred")
        assert leads.count() == sum(
            1 for s in api["sentences"][1:]
            if any(c["id"] in {i["id"] for i in inferred} for c in s["citations"]))
        marker = answer.locator(
            f".answer button.marker[data-citation='{inferred[0]['id']}']").first
        marker.tap() if size == "phone" else marker.click()
        assert page.locator("#cit-date .inferred").inner_text() == "(inferred)"
        page.click("#open-article")
        page.locator("#art-text mark#highlight").wait_for()
        assert page.locator("#art-meta .inferred").inner_text() == "(inferred)"
        shoot(page, screenshots, f"{size}-inferred-date-in-article")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_tapping_a_citation_shows_the_panel(browser: Any, e2e_server: Server, size: str,
                                            screenshots: Path) -> None:
    with open_page(browser, e2e_server.url, size) as page:
        page.fill("#api-key", API_KEY)
        answer = ask(page, QUESTION)
        marker = answer.locator(".answer button.marker").first
        marker.scroll_into_view_if_needed()
        marker.tap() if size == "phone" else marker.click()
        page.wait_for_timeout(300)
        assert page.locator("#panel").is_visible()
        for part in ("#cit-label", "#cit-quote", "#cit-support .support"):
            assert box_in_view(page, part)["inView"], part
        assert page.locator("#cit-support .support").inner_text() in (
            "supported", "partial", "unsupported")
        shoot(page, screenshots, f"{size}-citation-panel")
        page.click("#close-panel")
        assert not page.locator("#panel").is_visible()
