"""Tests for index/embedding/torch.py and the factory in index/embedding/__init__.py."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pytest

from index.embedding import Embedder, HashEmbedder, SentenceTransformerEmbedder, load_embedder


def test_torch_query_cache_reuses_and_stays_bounded() -> None:
    embedder = SentenceTransformerEmbedder.__new__(SentenceTransformerEmbedder)
    calls: list[int] = []

    class FakeModel:
        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            calls.append(len(texts))
            return np.ones((len(texts), 4), np.float32) / 2

    embedder._model = FakeModel()
    embedder.batch_size = 64
    embedder._cache = OrderedDict()
    embedder._cache_size = 2
    embedder._lock = threading.Lock()
    for text in ["a", "a", "b", "a", "c", "a"]:
        embedder.embed([text])
    assert calls == [1, 1, 1]
    assert len(embedder._cache) == 2


def test_unknown_embedder_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="onnx-int8"):
        load_embedder("word2vec")


def test_factory_builds_the_fake_and_it_meets_the_contract() -> None:
    embedder = load_embedder("hash")
    assert isinstance(embedder, HashEmbedder) and isinstance(embedder, Embedder)
