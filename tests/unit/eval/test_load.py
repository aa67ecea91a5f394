"""The load generator's bookkeeping, against a port nobody listens on (no server needed)."""

from __future__ import annotations

import asyncio
import gc
import socket

from eval.load import run_load


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failed_requests_are_counted_and_the_heap_is_unfrozen_afterwards() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    before = gc.get_freeze_count()
    report = asyncio.run(run_load(url, 3, 2, ["What happened?"], timeout=2.0,
                                  health_interval=0.01))
    assert report.errors == 3 and report.statuses == {"ConnectError": 3}
    assert report.health_probes >= 1 and report.health_errors == report.health_probes
    assert gc.get_freeze_count() == before
