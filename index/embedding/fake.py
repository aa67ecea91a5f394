"""A deterministic fake embedder for unit tests: hashed bags of words, no model needed."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from index.embedding.contract import SpanEmbeddings, normalise

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-hashed-words vectors: a fake for unit tests, no model needed."""

    def __init__(self, dimension: int = 64, name: str = "test/hash-embedder") -> None:
        self.name = name
        self.dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
        if not vector.any():
            vector[0] = 1.0
        return vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as normalised hashed bags of words."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        return normalise(np.stack([self._vector(t) for t in texts]))

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[SpanEmbeddings]:
        """Embed texts and each span independently."""
        out = []
        for text, text_spans in zip(texts, spans, strict=True):
            span_texts = [text[s:e] for s, e in text_spans]
            span_matrix = (
                self.embed(span_texts) if span_texts else np.zeros((0, self.dimension), np.float32)
            )
            out.append(SpanEmbeddings(text=self.embed([text])[0], spans=span_matrix))
        return out

    def count_word_pieces(self, text: str) -> int:
        """Approximate word pieces as words plus punctuation plus two specials."""
        return len(re.findall(r"\w+|[^\w\s]", text)) + 2
