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
