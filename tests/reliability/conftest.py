"""Real uvicorn servers on loopback for the reliability suite: real model, seed index copies.

Every server runs in its own process on a private copy of the session's seed index, so tests
that add, delete or corrupt things never touch another test's data. Server output goes to a
log file (a full pipe would stall the server), shown when a server fails to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import REPO, Server, copy_index, free_port, run_server, server_env, stop

API_KEY = "reliability-key-789"
ALLOWED_ORIGIN = "https://newsroom.example"

__all__ = ["ALLOWED_ORIGIN", "API_KEY", "REPO", "Server", "copy_index", "free_port",
           "run_server", "server_env", "stop"]


@pytest.fixture(scope="package")
def keyed_server(seed_index_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with an API key and one allowed CORS origin, shared by load/hostile/access."""
    root = tmp_path_factory.mktemp("keyed")
    data_dir = copy_index(seed_index_dir, root / "data")
    with run_server(data_dir, root / "server.log", api_key=API_KEY,
                    cors_origins=ALLOWED_ORIGIN) as server:
        yield server
