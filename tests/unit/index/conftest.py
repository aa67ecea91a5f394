"""Fixtures of the index tests: a data directory and a writer with the fake embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embedding import HashEmbedder
from index.ingest import IndexWriter


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def writer(data_dir: Path, hash_embedder: HashEmbedder) -> IndexWriter:
    return IndexWriter(data_dir, hash_embedder)
