"""HNSW search effort follows the index size, at build and when an older version is opened."""

from __future__ import annotations

from pathlib import Path

import faiss
import pytest

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.store import IndexSnapshot
from index.store.embedded_writer import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH_BY_SIZE,
    HNSW_EF_SEARCH_LARGE,
    HNSW_EF_SEARCH_LARGE_SPARSE,
    hnsw_ef_construction,
    hnsw_ef_search,
)
from tests.unit.index.sample import ALPHA, BRAVO


def test_effort_grows_with_size_and_large_graphs_are_built_denser() -> None:
    sizes = [1, 150_000, 150_001, 400_000, 400_001, 5_000_000]
    efforts = [hnsw_ef_search(n) for n in sizes]
    assert efforts == sorted(efforts)
    assert efforts[0] == HNSW_EF_SEARCH_BY_SIZE[0][1]
    assert efforts[2] > efforts[0]
    builds = [hnsw_ef_construction(n) for n in sizes]
    assert builds == sorted(builds) and builds[3] < builds[4]
    # A large graph built sparser (an older version) needs more search effort than a dense one.
    assert hnsw_ef_search(5_000_000, HNSW_EF_CONSTRUCTION) > hnsw_ef_search(5_000_000)


def _hnsw(snapshot: IndexSnapshot) -> faiss.IndexHNSW:
    inner = faiss.downcast_index(snapshot.vectors.index)
    assert isinstance(inner, faiss.IndexHNSW)
    return inner


def test_open_sets_the_effort_for_the_size(tmp_path: Path, hash_embedder: HashEmbedder,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    IndexWriter(tmp_path / "data", hash_embedder, index_type="hnsw").apply([ALPHA, BRAVO])
    snapshot = IndexSnapshot.open(tmp_path / "data", hash_embedder)
    assert _hnsw(snapshot).hnsw.efSearch == hnsw_ef_search(snapshot.chunk_count)
    # A version written with other settings gets today's effort when it is opened.
    monkeypatch.setattr("index.store.embedded_writer.HNSW_EF_SEARCH_BY_SIZE", ((10**9, 7),))
    assert _hnsw(IndexSnapshot.open(tmp_path / "data", hash_embedder)).hnsw.efSearch == 7


def test_open_reads_how_dense_the_graph_was_built(tmp_path: Path, hash_embedder: HashEmbedder,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    IndexWriter(tmp_path / "sparse", hash_embedder, index_type="hnsw").apply([ALPHA])
    monkeypatch.setattr("index.store.embedded_writer.HNSW_DENSE_ABOVE", 0)
    IndexWriter(tmp_path / "dense", hash_embedder, index_type="hnsw").apply([ALPHA])
    # Every size counts as large here: the effort then depends on the graph alone.
    monkeypatch.setattr("index.store.embedded_writer.HNSW_EF_SEARCH_BY_SIZE", ())
    snapshots = [IndexSnapshot.open(tmp_path / name, hash_embedder) for name in ("sparse",
                                                                               "dense")]
    sparse, dense = (_hnsw(snapshot).hnsw for snapshot in snapshots)  # alive with snapshots
    assert sparse.efConstruction == HNSW_EF_CONSTRUCTION < dense.efConstruction
    assert sparse.efSearch == HNSW_EF_SEARCH_LARGE_SPARSE
    assert dense.efSearch == HNSW_EF_SEARCH_LARGE
