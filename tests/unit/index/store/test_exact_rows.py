"""A selective filter on an HNSW index is answered exactly over the rows it keeps."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.store import Filters, IndexSnapshot
from index.store.embedded import ExactRows
from index.store.embedded_writer import _new_faiss_index
from tests.unit.index.sample import ALPHA, BRAVO, CHARLIE, make_doc


def _graph(vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    index = _new_faiss_index(vectors.shape[1], "hnsw", len(vectors))
    index.add_with_ids(vectors, ids)
    return index


def _unit(rng: np.random.Generator, count: int, dimension: int = 16) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_exact_rows_equal_a_brute_force_scan_of_the_allowed_ids() -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 500)
    ids = rng.permutation(np.arange(1000, 3000))[:500].astype(np.int64)  # sparse, unordered
    exact = ExactRows.of(_graph(vectors, ids))
    assert exact is not None
    allowed = np.sort(rng.choice(ids, 40, replace=False))
    for query in _unit(rng, 20):
        scores = {int(i): float(v @ query) for i, v in zip(ids, vectors, strict=True)
                  if i in set(allowed.tolist())}
        expected = sorted(scores, key=lambda i: -scores[i])[:10]
        assert exact.search(query, allowed, 10) == expected


def test_ids_the_index_does_not_hold_are_ignored_and_limits_respected() -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 50)
    exact = ExactRows.of(_graph(vectors, np.arange(50, dtype=np.int64)))
    assert exact is not None
    query = _unit(rng, 1)[0]
    assert exact.search(query, np.array([3, 7, 10_000], np.int64), 10) in ([3, 7], [7, 3])
    assert exact.search(query, np.array([-1, 99], np.int64), 10) == []
    assert exact.search(query, np.array([3, 7], np.int64), 0) == []
    assert len(exact.search(query, np.arange(50, dtype=np.int64), 5)) == 5


def test_a_flat_index_has_no_exact_path() -> None:
    index = _new_faiss_index(16, "flat", 10)
    index.add_with_ids(_unit(np.random.default_rng(2), 10), np.arange(10, dtype=np.int64))
    assert ExactRows.of(index) is None


@pytest.mark.parametrize("threshold", [0, 10**6])
def test_the_store_takes_either_path_with_the_same_answers(
        tmp_path: Path, hash_embedder: HashEmbedder, threshold: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    moved = make_doc("charlie", CHARLIE.text, outlet="Other Outlet", published="2022-06-01")
    IndexWriter(tmp_path / "data", hash_embedder, index_type="hnsw").apply([ALPHA, BRAVO, moved])
    snapshot = IndexSnapshot.open(tmp_path / "data", hash_embedder)
    monkeypatch.setattr("index.store.embedded.EXACT_FILTER_ROWS", threshold)
    calls: list[int] = []
    original = ExactRows.search

    def spy(self: ExactRows, query: np.ndarray, allowed: np.ndarray, limit: int) -> list[int]:
        calls.append(len(allowed))
        return original(self, query, allowed, limit)

    monkeypatch.setattr(ExactRows, "search", spy)
    filters = Filters(outlets=("Other Outlet",))
    query = hash_embedder.embed([CHARLIE.text[:80]])[0]
    rows = snapshot.vector_search(query, 5, filters)
    assert rows and {snapshot.chunk(r).doc_id for r in rows} == {"charlie"}
    assert bool(calls) == (threshold > 0)
    allowed = snapshot.allowed_rows(filters)
    assert allowed is not None
    vectors = snapshot.chunk_vectors(list(allowed))
    best = [int(allowed[i]) for i in np.argsort(-(vectors @ query), kind="stable")[:5]]
    assert rows == best


def test_selective_filters_take_the_exact_path_up_to_a_flat_index_size() -> None:
    from index.store.embedded import EXACT_FILTER_ROWS, EXACT_FILTER_SHARE, exact_is_better
    from index.store.embedded_writer import HNSW_AUTO_THRESHOLD

    total = 1_000_000
    assert exact_is_better(EXACT_FILTER_ROWS, 10**9)  # few rows: always
    assert exact_is_better(int(EXACT_FILTER_SHARE * total), total)  # a small share
    assert not exact_is_better(int(EXACT_FILTER_SHARE * total) + 10 + EXACT_FILTER_ROWS, total)
    huge = 10**8  # a small share of a huge index is still more than a flat index scans
    assert not exact_is_better(HNSW_AUTO_THRESHOLD + 1, huge)
