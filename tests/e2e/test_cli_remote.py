"""The installed ``groundqa`` command against the real session server (real models): ``ask`` and
``search`` with ``--url`` print what the in-process commands print, and fail in one line when
the server cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import API_KEY, Server
from tests.servers import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.model]

GROUNDQA = str(Path(sys.executable).with_name("groundqa"))
QUESTION = "How big a grant did Russia promise Tajikistan for a border outpost?"


def groundqa(*args: str, url: str | None = None, data_dir: Path | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the console script with only these GROUNDQA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    if url:
        env["GROUNDQA_URL"] = url
        env["GROUNDQA_API_KEY"] = API_KEY
    if data_dir:
        env["GROUNDQA_DATA_DIR"] = str(data_dir)
    env["COLUMNS"] = "160"
    return subprocess.run([GROUNDQA, *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_ask_through_the_server_prints_what_in_process_prints(e2e_server: Server) -> None:
    remote = groundqa("ask", QUESTION, url=e2e_server.url)
    local = groundqa("ask", QUESTION, data_dir=e2e_server.data_dir)
    assert remote.returncode == 0, remote.stderr
    assert local.returncode == 0, local.stderr
    assert remote.stdout == local.stdout
    assert "$100 million" in remote.stdout and "[1]" in remote.stdout


def test_json_through_the_server_is_the_servers_response(e2e_server: Server) -> None:
    remote = groundqa("ask", QUESTION, "--json", "--url", e2e_server.url, "--api-key", API_KEY)
    assert remote.returncode == 0, remote.stderr
    body = json.loads(remote.stdout)
    with e2e_server.client() as client:
        direct = client.post("/v1/ask", json={"question": QUESTION}).json()
    for key in ("id", "timings_ms"):
        body.pop(key)
        direct.pop(key)
    assert body == direct
    search = groundqa("search", "border outpost grant", "--k", "3", "--json",
                      url=e2e_server.url)
    assert search.returncode == 0, search.stderr
    assert len(json.loads(search.stdout)["passages"]) == 3


def test_unreachable_server_is_one_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = groundqa("ask", QUESTION, url=url, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith(f"error: cannot reach the groundqa server at {url}")
