"""The end-to-end session server: ``uvicorn service.asgi:app`` on loopback with the real models
(launched by ``tests/servers.py``, shared with the reliability suite).

Every e2e test talks to one session server: the extractive answerer, the packaged model, an API
key and a 64 KiB body limit, on a private copy of the session's seed index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server, copy_index, run_server

API_KEY = "e2e-key-123"
MAX_BODY_BYTES = 65536

__all__ = ["API_KEY", "MAX_BODY_BYTES", "Server"]


@pytest.fixture(scope="session")
def e2e_server(seed_index_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """groundqa (extractive) under uvicorn with an API key, on a copy of the seed index."""
    root = tmp_path_factory.mktemp("e2e")
    data_dir = copy_index(seed_index_dir, root / "data")
    with run_server(data_dir, root / "server.log", api_key=API_KEY,
                    max_body_bytes=str(MAX_BODY_BYTES)) as server:
        yield server


@pytest.fixture(scope="session")
def server_url(e2e_server: Server) -> str:
    """The session server's base URL."""
    return e2e_server.url
