"""Storage: the contract every store offers (``contract.py``) and its implementations.

``embedded.py`` (FAISS + bm25s + SQLite files with atomic versions, laid out as ``layout.py``
says and written by ``embedded_writer.py``) is the default store. The names below are the ones
the rest of the code imports; ``IndexWriter`` and ``IngestResult`` live in ``index.ingest``
(which imports this package) and are re-exported here lazily for existing imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from index.store.contract import (
    ChangeSet,
    ChunkReader,
    ChunkRecord,
    DocumentReader,
    Filters,
    LexicalHits,
    LexicalSearch,
    SentenceReader,
    SentenceRecord,
    Snapshot,
    Store,
    Transaction,
    VectorSearch,
)
from index.store.embedded import EmbeddedStore, IndexSnapshot
from index.store.layout import DataDir

if TYPE_CHECKING:
    from index.ingest import IndexWriter, IngestResult

__all__ = [
    "ChangeSet",
    "ChunkReader",
    "ChunkRecord",
    "DataDir",
    "DocumentReader",
    "EmbeddedStore",
    "Filters",
    "IndexSnapshot",
    "IndexWriter",
    "IngestResult",
    "LexicalHits",
    "LexicalSearch",
    "SentenceReader",
    "SentenceRecord",
    "Snapshot",
    "Store",
    "Transaction",
    "VectorSearch",
]


def __getattr__(name: str) -> Any:
    if name in ("IndexWriter", "IngestResult"):
        from index import ingest

        return getattr(ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
