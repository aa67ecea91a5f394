"""The embedder contract: what every embedder (torch, ONNX, the test fake) offers the index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_WORD_PIECES = 256


@dataclass(frozen=True)
class SpanEmbeddings:
    """A text's embedding plus embeddings of character spans inside it (one forward pass)."""

    text: np.ndarray  # (dim,) float32, L2-normalised
    spans: np.ndarray  # (n_spans, dim) float32, L2-normalised


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dimension) float32 array of unit vectors."""
        ...

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[SpanEmbeddings]:
        """Embed each text and, from the same pass, each (start, end) char span inside it."""
        ...

    def count_word_pieces(self, text: str) -> int:
        """Number of model input tokens for ``text`` including special tokens."""
        ...


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


def pool_spans(matrix: np.ndarray, offsets: Sequence[tuple[int, int]],
               special: Sequence[int], spans: Sequence[tuple[int, int]],
               dimension: int) -> np.ndarray:
    """Mean of the token vectors overlapping each char span (all tokens when none do)."""
    if not spans:
        return np.zeros((0, dimension), np.float32)
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = bounds[:, 0], bounds[:, 1]
    regular = (np.asarray(special) == 0) & (ends > starts)
    wanted = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    mask = (regular[None, :] & (starts[None, :] < wanted[:, 1:2])
            & (ends[None, :] > wanted[:, 0:1]))
    counts = mask.sum(axis=1, keepdims=True)
    pooled = (mask.astype(np.float32) @ matrix) / np.maximum(counts, 1)
    empty = counts[:, 0] == 0
    if empty.any():
        pooled[empty] = matrix.mean(axis=0)
    return normalise(pooled)
