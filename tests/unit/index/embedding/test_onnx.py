"""Tests for index/embedding/onnx.py: span pooling, the bounded query cache, parity."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import EmbeddingMismatch
from index.embedding import DEFAULT_MODEL_NAME, SentenceTransformerEmbedder
from index.embedding.onnx import (
    INT8_MODEL_NAME,
    OnnxEmbedder,
    pool_spans,
    session_options,
    set_spinning,
)


def test_pool_spans_means_overlapping_regular_tokens() -> None:
    matrix = np.array([[9, 9], [1, 0], [0, 1], [3, 3], [9, 9]], np.float32)
    offsets = [(0, 0), (0, 5), (6, 10), (11, 15), (0, 0)]  # [CLS] w1 w2 w3 [SEP]
    special = [1, 0, 0, 0, 1]
    pooled = pool_spans(matrix, offsets, special, [(0, 10), (11, 15)], 2)
    assert np.allclose(pooled[0], np.array([1, 1]) / np.sqrt(2))
    assert np.allclose(pooled[1], np.array([1, 1]) / np.sqrt(2))
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0)


def test_pool_spans_falls_back_to_all_tokens_and_handles_no_spans() -> None:
    matrix = np.array([[2, 0], [0, 2]], np.float32)
    pooled = pool_spans(matrix, [(0, 3), (4, 6)], [0, 0], [(50, 60)], 2)
    assert np.allclose(pooled[0], np.array([1, 1]) / np.sqrt(2))
    assert pool_spans(matrix, [(0, 3), (4, 6)], [0, 0], [], 2).shape == (0, 2)


def _counting_onnx_embedder(cache_size: int) -> tuple[OnnxEmbedder, list[int]]:
    """An OnnxEmbedder whose forward pass is a counting fake (no model file needed)."""
    embedder = OnnxEmbedder.__new__(OnnxEmbedder)
    embedder.dimension = 4
    embedder._cache = OrderedDict()
    embedder._cache_size = cache_size
    embedder._lock = threading.Lock()
    calls: list[int] = []

    def forward(texts: Sequence[str]):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return [np.full((3, 4), float(len(t)), np.float32) for t in texts], [None] * len(texts)

    embedder._token_embeddings = forward  # type: ignore[method-assign]
    return embedder, calls


def test_onnx_query_cache_reuses_and_stays_bounded() -> None:
    embedder, calls = _counting_onnx_embedder(cache_size=2)
    first = embedder.embed(["what happened?"])
    again = embedder.embed(["what happened?"])
    assert calls == [1] and np.array_equal(first, again)
    embedder.embed(["b"])
    embedder.embed(["what happened?"])  # refreshes its place in the LRU order
    embedder.embed(["c"])  # evicts "b", the least recently used
    assert list(embedder._cache) == ["what happened?", "c"]
    embedder.embed(["b"])
    assert calls == [1, 1, 1, 1]
    embedder.embed(["x", "y"])  # batches are not cached
    assert len(embedder._cache) == 2


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.model
def test_onnx_fp32_matches_torch_and_int8_has_its_own_name(
    real_embedder: SentenceTransformerEmbedder, onnx_cache: Path, tmp_path: Path
) -> None:
    from corpus.loader import parse_document
    from index.ingest import IndexWriter
    from index.store import IndexSnapshot

    fp32 = OnnxEmbedder("fp32", cache_dir=onnx_cache)
    texts = ["How many IS militants are near the Tajik border?",
             "Russia promised a grant. It was for a border outpost near Dushanbe."]
    spans = [[(0, 48)], [(0, 24), (25, 68)]]
    assert fp32.name == DEFAULT_MODEL_NAME
    assert np.allclose(fp32.embed(texts), real_embedder.embed(texts), atol=1e-4)
    for ours, theirs in zip(fp32.embed_with_spans(texts, spans),
                            real_embedder.embed_with_spans(texts, spans), strict=True):
        assert np.allclose(ours.text, theirs.text, atol=1e-4)
        assert np.allclose(ours.spans, theirs.spans, atol=1e-4)
    assert [fp32.count_word_pieces(t) for t in texts] == [
        real_embedder.count_word_pieces(t) for t in texts]
    assert OnnxEmbedder("fp32", cache_dir=onnx_cache).model_path == fp32.model_path  # cached

    int8 = OnnxEmbedder("int8", cache_dir=onnx_cache)
    assert int8.name == INT8_MODEL_NAME
    cosine = (int8.embed(texts) * fp32.embed(texts)).sum(axis=1)
    assert (cosine > 0.9).all()
    doc = parse_document(b"Border guards met in Dushanbe on Monday. They talked for hours.",
                         name="a.txt", suffix=".txt", doc_id="a")
    IndexWriter(tmp_path, fp32).apply([doc])
    IndexSnapshot.open(tmp_path, real_embedder)  # fp32 ONNX and torch share an index
    with pytest.raises(EmbeddingMismatch):
        IndexSnapshot.open(tmp_path, int8)


def test_session_options_follow_the_process_spinning_switch() -> None:
    key = "session.intra_op.allow_spinning"
    try:
        set_spinning(True)
        assert session_options(2).get_session_config_entry(key) == "1"
        set_spinning(False)
        options = session_options(3)
        assert options.get_session_config_entry(key) == "0"
        assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    finally:
        set_spinning(False)
