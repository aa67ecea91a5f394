"""The one launcher for end-to-end tests: ``uvicorn service.asgi:app`` on loopback, real model.

Every e2e test talks to one session server: the extractive answerer, the packaged model, an API
key and a 64 KiB body limit, on a private copy of the session's seed index. Server output goes
to a log file (a full pipe would stall the server), shown when the server fails to start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
API_KEY = "e2e-key-123"
MAX_BODY_BYTES = 65536


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running groundqa server: its base URL, process, data directory, log and key."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    api_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header carrying the key (none without a key)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = 60.0) -> httpx.Client:
        """An HTTP client for this server, sending the key."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)


@contextmanager
def run_server(data_dir: Path, log: Path, api_key: str | None = None,
               **settings: str) -> Iterator[Server]:
    """Start ``uvicorn service.asgi:app`` with ``GROUNDQA_<NAME>`` = each setting, on a free
    loopback port; wait until it is ready; stop it afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    env["GROUNDQA_DATA_DIR"] = str(data_dir)
    if api_key:
        env["GROUNDQA_API_KEYS"] = api_key
    env.update({f"GROUNDQA_{k.upper()}": v for k, v in settings.items()})
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.asgi:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, data_dir, log, api_key)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        stop(process)


def _wait_until_ready(server: Server, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited ({server.process.returncode}):\n"
                               f"{server.log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", headers=server.headers,
                         timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(server.process)
    raise RuntimeError(f"server not ready after {timeout} s:\n"
                       f"{server.log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not exit in 20 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def e2e_server(seed_index_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """groundqa (extractive) under uvicorn with an API key, on a copy of the seed index."""
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    shutil.copytree(seed_index_dir, data_dir)
    with run_server(data_dir, root / "server.log", api_key=API_KEY,
                    max_body_bytes=str(MAX_BODY_BYTES)) as server:
        yield server


@pytest.fixture(scope="session")
def server_url(e2e_server: Server) -> str:
    """The session server's base URL."""
    return e2e_server.url
