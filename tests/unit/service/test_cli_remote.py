"""`groundqa ask/search --url` use a running server and print what the in-process commands print;
`groundqa documents list` shows whole ids and has `--json`.

The server is the real app under a real uvicorn on loopback, in a thread, around the HTTP
suite's four made-up articles embedded with the fake ``HashEmbedder`` (no model to load).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner, Result

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.core import QAService
from service.http.app import create_app
from tests.http.conftest import ANSWERABLE, article_documents, http_settings
from tests.servers import free_port

KEY = "cli-remote-key"
#: Differ between any two calls by design (a fresh id, the time taken).
VOLATILE = ("id", "timings_ms")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli-remote") / "data"
    IndexWriter(data_dir, HashEmbedder()).apply(add=article_documents())
    return data_dir


@pytest.fixture(scope="module")
def server_url(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on its own copy of the index, keys on, under uvicorn in a thread."""
    data_dir = tmp_path_factory.mktemp("cli-remote-server") / "data"
    shutil.copytree(index_dir, data_dir)
    settings = http_settings(data_dir, api_keys=[KEY])
    app = create_app(settings, service=QAService(settings, HashEmbedder()))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, index_dir: Path) -> Any:
    """``cli(*args)``: run ``groundqa`` in-process, wide console, hash embedder, no server
    configured unless a test sets one."""
    from service import cli as cli_module

    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(index_dir))
    monkeypatch.delenv("GROUNDQA_URL", raising=False)
    monkeypatch.delenv("GROUNDQA_API_KEY", raising=False)
    monkeypatch.setattr(cli_module.console, "width", 200)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli_module.app, list(args))

    return run


def _stable(output: str) -> dict[str, Any]:
    body = json.loads(output)
    for key in VOLATILE:
        body.pop(key, None)
    return body


@pytest.mark.parametrize("question", ANSWERABLE[:2])
def test_ask_over_the_server_prints_what_in_process_prints(cli: Any, server_url: str,
                                                           question: str) -> None:
    local = cli("ask", question)
    remote = cli("ask", question, "--url", server_url, "--api-key", KEY)
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert remote.stdout == local.stdout
    assert "[1]" in remote.stdout
    local_json = cli("ask", question, "--json")
    remote_json = cli("ask", question, "--json", "--url", server_url, "--api-key", KEY)
    assert _stable(remote_json.stdout) == _stable(local_json.stdout)


def test_search_over_the_server_prints_what_in_process_prints(cli: Any,
                                                              server_url: str) -> None:
    query = "harbour breakwater repairs"
    local = cli("search", query, "--k", "3", "--json")
    remote = cli("search", query, "--k", "3", "--json", "--url", server_url, "--api-key", KEY)
    assert remote.exit_code == 0, remote.output
    assert _stable(remote.stdout) == _stable(local.stdout)
    assert len(json.loads(remote.stdout)["passages"]) == 3
    table = cli("search", query, "--url", server_url, "--api-key", KEY)
    assert table.stdout == cli("search", query).stdout


def test_url_and_key_come_from_the_environment(cli: Any, server_url: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    # No index here: only the server can answer.
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("GROUNDQA_URL", server_url + "/")
    monkeypatch.setenv("GROUNDQA_API_KEY", KEY)
    result = cli("ask", ANSWERABLE[0], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answerable"] in (True, False)
    # --url '' answers in-process even when GROUNDQA_URL is set (and here finds no index).
    local = cli("ask", ANSWERABLE[0], "--url", "")
    assert local.exit_code != 0


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_unreachable_server_is_one_clear_line(cli: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["ask", "a question?"], ["search", "a query"]):
        line = _one_error_line(cli(*command, "--url", url))
        assert f"cannot reach the groundqa server at {url}" in line
        assert "refused" in line.lower()


def test_missing_or_wrong_key_names_the_option(cli: Any, server_url: str) -> None:
    for extra in ([], ["--api-key", "wrong"]):
        line = _one_error_line(cli("ask", ANSWERABLE[0], "--url", server_url, *extra))
        assert "needs an API key" in line and "--api-key" in line and "GROUNDQA_API_KEY" in line


def test_refused_input_shows_the_servers_message(cli: Any, server_url: str) -> None:
    line = _one_error_line(cli("ask", "   ", "--url", server_url, "--api-key", KEY))
    assert "empty_question" in line and re.search(r"HTTP 4\d\d from ", line), line


def test_not_a_groundqa_server_or_not_a_url(cli: Any, server_url: str) -> None:
    line = _one_error_line(cli("ask", "q?", "--url", "localhost:8000"))
    assert "http://" in line
    # A server that answers, but not with a groundqa response (the chat page's HTML).
    line = _one_error_line(cli("ask", "q?", "--url", server_url + "/static", "--api-key", KEY))
    assert "HTTP" in line


def test_documents_list_json_and_whole_ids(cli: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from service import cli as cli_module

    long_id = "an-article-id-long-enough-to-be-cut-in-an-80-column-terminal-" + "x" * 30
    data_dir = tmp_path / "data"
    documents = article_documents()
    IndexWriter(data_dir, HashEmbedder()).apply(
        add=[*documents[:2], dataclasses.replace(documents[2], doc_id=long_id)])
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(data_dir))
    listed = cli("documents", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    ids = [row["doc_id"] for row in rows]
    assert long_id in ids and len(ids) == 3
    assert all({"doc_id", "title", "outlet", "published"} <= set(row) for row in rows)

    monkeypatch.setattr(cli_module.console, "width", 80)
    listing = cli("documents", "list")
    assert listing.exit_code == 0, listing.output
    assert "…" not in listing.stdout
    starts = [line.split()[0] for line in listing.stdout.splitlines()
              if line and not line.startswith(" ")]
    assert starts == ids  # each id whole, at the start of its line, in id order


def test_server_is_really_keyed(server_url: str) -> None:
    # The fixture server refuses a request without the key (what the tests above rely on).
    response = httpx.post(server_url + "/v1/ask", json={"question": "q?"})
    assert response.status_code == 401
    assert re.search("unauthorized", response.text)
