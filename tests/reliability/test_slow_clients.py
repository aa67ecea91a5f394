"""Slow clients against a real server (issue 14, item 1).

Four clients that sent the headers of ``POST /v1/ask`` with ``Content-Length: 100`` and one
byte of body used to block every ask and search indefinitely. Here sixteen such clients (and
a few that trickle a byte a second) hold their connections while a normal ask must still
answer promptly; each slow client then gets a JSON 408 once the body deadline passes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import copy_index, run_server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

SLOW_CLIENTS = 16
TRICKLING_CLIENTS = 4
BODY_TIMEOUT = 6.0


def open_slow_request(port: int, path: str) -> socket.socket:
    """A connection that announced a 100-byte JSON body and sent one byte of it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """Status and JSON body of the response on ``sock`` (the server closes after it)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        if length and len(body) >= length[0]:
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_slow_bodies_do_not_stop_answering(seed_index_dir: Path, tmp_path: Path) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    with run_server(data_dir, tmp_path / "server.log",
                    body_timeout_seconds=str(BODY_TIMEOUT)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with server.client(timeout=30) as client:  # warm: the reader is loaded
            assert client.post("/v1/ask", json={"question": "Who closed an embassy?"}) \
                .status_code == 200
        opened = time.monotonic()
        slow = [open_slow_request(port, "/v1/ask" if i % 2 else "/v1/search")
                for i in range(SLOW_CLIENTS)]
        trickling = [open_slow_request(port, "/v1/ask") for _ in range(TRICKLING_CLIENTS)]
        stop = threading.Event()

        def trickle() -> None:  # a byte a second: never idle, never done
            while not stop.wait(1.0):
                for sock in trickling:
                    try:
                        sock.sendall(b" ")
                    except OSError:
                        pass

        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        try:
            time.sleep(0.5)
            with server.client(timeout=BODY_TIMEOUT) as client:
                started = time.monotonic()
                ask = client.post("/v1/ask", json={"question": "Who closed an embassy in Kabul?"})
                ask_seconds = time.monotonic() - started
                search = client.post("/v1/search", json={"query": "border outpost grant"})
            assert ask.status_code == 200, ask.text
            assert search.status_code == 200, search.text
            # Before: no answer at all while the slow clients held the slots.
            assert ask_seconds < BODY_TIMEOUT / 2, ask_seconds
            for sock in slow + trickling:
                status, body = read_response(sock)
                assert status == 408, body
                assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
            # Every slow client was let go at the deadline, not held for ever.
            assert time.monotonic() - opened < BODY_TIMEOUT + 20
        finally:
            stop.set()
            feeder.join()
            for sock in slow + trickling:
                sock.close()
        with server.client(timeout=30) as client:
            assert client.get("/readyz").status_code == 200
