"""Shared fixtures: embedders (real and fake), the demo corpus and its index.

Real-model fixtures are session-scoped so the packaged model loads once per test run and the
seed index is built once; tests that use them carry the ``model`` marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.loader import DEMO_CORPUS_DIR, Document, load_paths
from index.embedding import HashEmbedder, SentenceTransformerEmbedder
from index.ingest import IndexWriter

# ---------------------------------------------------------------------------------------------
# Embedders


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 model, loaded once per session."""
    return SentenceTransformerEmbedder()


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    """A deterministic fake embedder for fast unit tests."""
    return HashEmbedder()


# ---------------------------------------------------------------------------------------------
# Corpus and index


@pytest.fixture(scope="session")
def seed_documents() -> list[Document]:
    """The five demo articles, cleaned by the loader (Documents are immutable, so shared)."""
    report = load_paths([DEMO_CORPUS_DIR])
    assert not report.skipped, report.skipped
    return report.documents


@pytest.fixture(scope="session")
def seed_index_dir(
    tmp_path_factory: pytest.TempPathFactory,
    real_embedder: SentenceTransformerEmbedder,
    seed_documents: list[Document],
) -> Path:
    """A data directory holding the demo corpus indexed with the real model (built once)."""
    data_dir = tmp_path_factory.mktemp("seed-index")
    IndexWriter(data_dir, real_embedder).apply(add=seed_documents)
    return data_dir


# ---------------------------------------------------------------------------------------------
# PostgreSQL (the database store): one server per session, a database per test


@pytest.fixture(scope="session")
def postgres_server():  # type: ignore[no-untyped-def]
    """PostgreSQL 16 + pgvector from the pgserver wheel (skips with the reason if it cannot)."""
    from tests.postgres import start_server

    server = start_server()
    yield server
    server.cleanup()


@pytest.fixture
def database_url(postgres_server) -> str:  # type: ignore[no-untyped-def]
    """The URL of a fresh, empty database."""
    from tests.postgres import new_database

    return new_database(postgres_server)
