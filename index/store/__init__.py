"""Storage: the contract every store offers (``contract.py``) and its implementations.

``embedded.py`` (FAISS + bm25s + SQLite files with atomic versions, laid out as ``layout.py``
says and written by ``embedded_writer.py``) is the default store. The names below are the ones
the rest of the code imports; the ingest pipeline that writes into a store is ``index.ingest``.
"""

from __future__ import annotations

from pathlib import Path

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

__all__ = [
    "ChangeSet",
    "ChunkReader",
    "ChunkRecord",
    "DataDir",
    "DocumentReader",
    "EmbeddedStore",
    "Filters",
    "IndexSnapshot",
    "LexicalHits",
    "LexicalSearch",
    "SentenceReader",
    "SentenceRecord",
    "Snapshot",
    "Store",
    "Transaction",
    "VectorSearch",
    "open_store",
]


def open_store(data_dir: Path | str, database_url: str | None = None,
               index_type: str = "auto") -> Store:
    """The store the settings name: PostgreSQL when ``database_url`` is set, else the files in
    ``data_dir`` (``index_type`` applies to those only)."""
    if database_url:
        from index.store.postgres import PostgresStore

        return PostgresStore(database_url)
    return EmbeddedStore(Path(data_dir), index_type)

