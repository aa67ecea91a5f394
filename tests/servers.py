"""Real groundqa servers on loopback for the end-to-end and reliability suites.

``run_server`` starts ``uvicorn service.asgi:app`` (or ``groundqa serve``) on a free port with
``GROUNDQA_<NAME>`` = each setting, waits until it answers, and stops it afterwards. Server
output goes to a log file (a full pipe would stall the server), shown when it fails to start.
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

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment for a groundqa process: this data dir, GROUNDQA_* from ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    env["GROUNDQA_DATA_DIR"] = str(data_dir)
    env.update({f"GROUNDQA_{k.upper()}": v for k, v in settings.items()})
    return env


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

    def client(self, timeout: float = 120.0, **kwargs: object) -> httpx.Client:
        """An HTTP client for this server, sending the key when there is one."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout,
                            **kwargs)  # type: ignore[arg-type]


@contextmanager
def run_server(data_dir: Path, log: Path, api_key: str | None = None,
               wait_ready: bool = True, cli: bool = False, **settings: str) -> Iterator[Server]:
    """Start ``uvicorn service.asgi:app`` (or ``groundqa serve`` when ``cli``) on a free
    loopback port; wait until ready (or only up); stop it afterwards."""
    if api_key:
        settings.setdefault("api_keys", api_key)
    port = free_port()
    command = ([str(Path(sys.executable).with_name("groundqa")), "serve", "--port", str(port)]
               if cli else [sys.executable, "-m", "uvicorn", "service.asgi:app", "--host",
                            "127.0.0.1", "--port", str(port), "--log-level", "warning"])
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=server_env(data_dir, **settings), cwd=REPO,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, data_dir, log, api_key)
    try:
        _wait_until_up(server, wait_ready)
        yield server
    finally:
        stop(process)


def _wait_until_up(server: Server, wait_ready: bool, timeout: float = 180.0) -> None:
    path = "/readyz" if wait_ready else "/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited ({server.process.returncode}):\n"
                               f"{server.log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(server.url + path, headers=server.headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(server.process)
    raise RuntimeError(f"server not up after {timeout} s:\n"
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


def copy_index(seed_index_dir: Path, target: Path) -> Path:
    """A private copy of the seed index (the session's copy is never served)."""
    shutil.copytree(seed_index_dir, target)
    return target
