"""Embedders: the contract, the factory, and the implementations (torch, ONNX, a test fake).

``contract.py`` holds what every embedder offers; ``torch.py`` runs the packaged MiniLM model
through sentence-transformers, ``onnx.py`` the same model on ONNX Runtime, ``fake.py`` a
deterministic hash embedder for unit tests. ``load_embedder`` picks one by name.
"""

from __future__ import annotations

from index.embedding.contract import (
    DEFAULT_MODEL_NAME,
    MAX_WORD_PIECES,
    Embedder,
    SpanEmbeddings,
    normalise,
)
from index.embedding.fake import HashEmbedder
from index.embedding.torch import SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MAX_WORD_PIECES",
    "Embedder",
    "HashEmbedder",
    "SentenceTransformerEmbedder",
    "SpanEmbeddings",
    "load_embedder",
    "normalise",
]


def load_embedder(kind: str = "minilm") -> Embedder:
    """Build the embedder named by configuration."""
    if kind == "minilm":
        return SentenceTransformerEmbedder()
    if kind == "hash":
        return HashEmbedder()
    if kind in ("onnx", "onnx-int8"):
        from index.embedding.onnx import OnnxEmbedder

        return OnnxEmbedder("int8" if kind == "onnx-int8" else "fp32")
    raise ValueError(
        f"unknown embedder {kind!r} (expected 'minilm', 'onnx', 'onnx-int8' or 'hash')"
    )
