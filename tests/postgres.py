"""A real PostgreSQL 16 with pgvector for the tests, started by the tests themselves (pgserver).

``start_server`` runs the server bundled in the ``pgserver`` wheel in a fresh temporary
directory (no network, no system PostgreSQL needed); ``new_database`` gives each test its own
empty database on it. Tests skip with the reason when the server cannot start here.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

import pytest


def _unavailable(reason: str) -> None:
    # CI sets GROUNDQA_REQUIRE_POSTGRES=1: there a PostgreSQL that cannot start is a failure,
    # not a skip that would leave the database store untested.
    if os.environ.get("GROUNDQA_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def start_server(path: str | None = None, cleanup_mode: str = "delete") -> Any:
    """A PostgreSQL server on the data folder ``path`` (default: a fresh one), or a skip saying
    why it cannot run. ``cleanup_mode="stop"`` keeps the data when it is cleaned up, so the same
    ``path`` starts it again."""
    try:
        import pgserver
        import psycopg  # noqa: F401
    except ImportError as exc:
        _unavailable(f"PostgreSQL tests need the pgserver wheel and psycopg (`make setup` "
                     f"installs them): {exc}")
    # A short path: the server's Unix socket lives in it (socket paths are limited to ~100 bytes).
    path = path or tempfile.mkdtemp(prefix="gq-pg-")
    try:
        return pgserver.get_server(path, cleanup_mode=cleanup_mode)
    except Exception as exc:  # noqa: BLE001 - any failure to start means: skip, saying why
        _unavailable(f"PostgreSQL (pgserver) could not start here: {exc}")
        raise


def new_database(server: Any) -> str:
    """A fresh, empty database on ``server``; returns its URL."""
    name = f"gq_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name};")
    uri: str = server.get_uri()
    base, _, query = uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"
