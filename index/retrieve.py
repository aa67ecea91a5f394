"""Hybrid passage search over any store: dense and lexical candidates, exact scores, fused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from corpus.errors import InvalidRequest
from index.embedding import Embedder
from index.store.contract import ChunkRecord, Filters, Snapshot

__all__ = [
    "CANDIDATES_PER_SIGNAL",
    "DEFAULT_DENSE_WEIGHT",
    "DEFAULT_FUSION",
    "RRF_K",
    "FusionMethod",
    "Passage",
    "fuse",
    "search",
]

FusionMethod = Literal["convex", "rrf", "dense", "bm25"]

# Chosen on the BEIR SciFact *train* claims (test reported in README; `groundqa eval retrieval`):
# a convex mix of cosine and max-normalised BM25 beat reciprocal-rank fusion there.
DEFAULT_FUSION: FusionMethod = "convex"
DEFAULT_DENSE_WEIGHT = 0.7
RRF_K = 60
CANDIDATES_PER_SIGNAL = 100


@dataclass(frozen=True)
class Passage:
    """A ranked chunk with its dense, lexical and fused scores."""

    chunk: ChunkRecord
    score: float
    dense: float
    lexical: float
    rank: int


def search(
    snapshot: Snapshot,
    embedder: Embedder,
    query: str,
    k: int = 10,
    filters: Filters | None = None,
    method: FusionMethod = DEFAULT_FUSION,
    dense_weight: float = DEFAULT_DENSE_WEIGHT,
    query_vector: np.ndarray | None = None,
) -> list[Passage]:
    """Return the ``k`` best passages for ``query`` that pass ``filters``."""
    if k < 1:
        raise InvalidRequest("k must be at least 1")
    filters = filters or Filters()
    if snapshot.chunk_count == 0:
        return []
    if query_vector is None:
        query_vector = embedder.embed([query])[0]
    query_vector = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)

    # Candidates from each signal, restricted to the filtered chunks by the store.
    n_candidates = min(max(CANDIDATES_PER_SIGNAL, k * 4), snapshot.chunk_count)
    dense_rows = snapshot.vector_search(query_vector[0], n_candidates, filters)
    hits = snapshot.lexical_search(query, n_candidates, filters)

    candidates = list(dict.fromkeys(dense_rows + hits.rows))
    if not candidates:
        return []
    # Exact scores for every candidate, whichever signal found it.
    vectors = snapshot.chunk_vectors(candidates)
    dense = vectors @ query_vector[0]
    lexical = hits.scores(candidates)
    fused = fuse(dense, lexical, method, dense_weight)
    order = np.argsort(-fused, kind="stable")[:k]
    return [
        Passage(
            chunk=snapshot.chunk(candidates[i]),
            score=float(fused[i]),
            dense=float(dense[i]),
            lexical=float(lexical[i]),
            rank=rank,
        )
        for rank, i in enumerate(order, start=1)
    ]


def fuse(dense: np.ndarray, lexical: np.ndarray, method: FusionMethod,
         dense_weight: float = DEFAULT_DENSE_WEIGHT) -> np.ndarray:
    """Combine per-candidate dense (cosine) and lexical (BM25) scores into one score."""
    if method == "dense":
        return dense.astype(np.float32)
    if method == "bm25":
        return lexical.astype(np.float32)
    if method == "rrf":
        dense_rank = np.empty(len(dense))
        dense_rank[np.argsort(-dense, kind="stable")] = np.arange(1, len(dense) + 1)
        lexical_rank = np.empty(len(lexical))
        lexical_rank[np.argsort(-lexical, kind="stable")] = np.arange(1, len(lexical) + 1)
        lexical_term = np.where(lexical > 0, 1.0 / (RRF_K + lexical_rank), 0.0)
        return (1.0 / (RRF_K + dense_rank) + lexical_term).astype(np.float32)
    if method == "convex":
        top = float(lexical.max()) if len(lexical) else 0.0
        lexical_norm = lexical / top if top > 0 else np.zeros_like(lexical)
        return (dense_weight * dense + (1 - dense_weight) * lexical_norm).astype(np.float32)
    raise ValueError(f"unknown fusion method {method!r}")
