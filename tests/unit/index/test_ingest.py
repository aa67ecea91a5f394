"""Tests for index/ingest.py: add, skip unchanged, replace, delete, crash before the write."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import DocumentNotFound
from index.chunking import ChunkingConfig
from index.embedding import HashEmbedder
from index.ingest import IndexWriter, IngestResult
from index.retrieve import search
from index.store import EmbeddedStore, IndexSnapshot
from index.store.contract import ChangeSet
from tests.unit.index.sample import (
    ALPHA,
    BRAVO,
    CHARLIE,
    assert_consistent,
    chunk_texts,
    make_doc,
    sentences,
    versions,
)

# ---------------------------------------------------------------------------------------------
# Ingest, re-ingest, replace, delete


def test_ingest_then_unchanged_reingest_is_a_noop(writer: IndexWriter, data_dir: Path,
                                                  hash_embedder: HashEmbedder) -> None:
    first = writer.apply(add=[ALPHA, BRAVO])
    assert first.added == ["alpha", "bravo"] and first.version == "v000001"
    assert first.chunks_embedded > 2
    assert {"chunk", "embed", "write"} <= set(first.timings)
    before = (data_dir / "CURRENT").read_text()

    again = writer.apply(add=[ALPHA, BRAVO])
    assert again.unchanged == ["alpha", "bravo"]
    assert again.added == again.replaced == [] and again.chunks_embedded == 0
    assert again.version == "v000001"
    assert versions(data_dir) == ["v000001"]
    assert (data_dir / "CURRENT").read_text() == before
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.document_count == 2
    assert_consistent(snapshot)


def test_changed_document_replaces_its_chunks(writer: IndexWriter, data_dir: Path,
                                              hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA, BRAVO])
    old = IndexSnapshot.open(data_dir, hash_embedder)
    old_alpha_texts = [t for r in old.chunk_rows() if (t := old.chunk(r).text) and "alpaca" in t]
    assert old_alpha_texts

    new_alpha = make_doc("alpha", "Yaks in the Pamir.\n\n" + sentences("yak", 8))
    result = writer.apply(add=[new_alpha, BRAVO])
    assert result.replaced == ["alpha"] and result.unchanged == ["bravo"]
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert_consistent(snapshot)
    assert snapshot.version == "v000002"
    texts = chunk_texts(snapshot)
    assert not any(t in texts for t in old_alpha_texts)
    assert not any("alpaca" in t for t in texts)
    assert snapshot.document("alpha")["text"] == new_alpha.text
    assert snapshot.vectors.ntotal == old.vectors.ntotal - len(old_alpha_texts) + len(
        [t for t in texts if "yak" in t.lower()]
    )
    # Neither signal finds the old text any more; the new text is found.
    for method in ("bm25", "dense", "convex"):
        hits = search(snapshot, hash_embedder, "alpaca report event alpaca3", k=5, method=method)
        assert all("alpaca" not in p.chunk.text for p in hits)
    hits = search(snapshot, hash_embedder, "yak report event yak3", k=3, method="bm25")
    assert hits[0].chunk.doc_id == "alpha" and "yak3" in hits[0].chunk.text
    # Bravo's vectors were reused, not re-embedded.
    assert result.chunks_embedded == len([t for t in texts if "yak" in t.lower()])


def test_metadata_change_alone_replaces_document(writer: IndexWriter, data_dir: Path,
                                                 hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA])
    moved = make_doc("alpha", ALPHA.text, outlet="Other Outlet")
    assert writer.apply(add=[moved]).replaced == ["alpha"]
    assert IndexSnapshot.open(data_dir, hash_embedder).document_meta("alpha")["outlet"] == (
        "Other Outlet"
    )


def test_delete_removes_vectors_bm25_and_rows(writer: IndexWriter, data_dir: Path,
                                              hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA, BRAVO, CHARLIE])
    before = IndexSnapshot.open(data_dir, hash_embedder)
    bravo_rows = [r for r in before.chunk_rows() if before.chunk(r).doc_id == "bravo"]
    assert before.lexical.scores("bridge Vakhsh").max() > 0

    result = writer.apply(delete=["bravo"])
    assert result.deleted == ["bravo"]
    after = IndexSnapshot.open(data_dir, hash_embedder)
    assert_consistent(after)
    assert after.vectors.ntotal == before.vectors.ntotal - len(bravo_rows)
    assert not after.has_document("bravo")
    assert not set(bravo_rows) & set(after.chunk_rows())
    assert not set(bravo_rows) & {int(r) for r in after.lexical.row_ids}
    # "bridge" and "vakhsh" only occurred in bravo: BM25 no longer knows them.
    assert after.lexical.query_tokens("bridge Vakhsh") == []
    assert not after.lexical.scores("bridge Vakhsh").any()
    with pytest.raises(DocumentNotFound):
        after.document("bravo")
    with sqlite3.connect(after.path / "meta.sqlite") as db:
        for table in ("documents", "chunks", "sentences"):
            count = db.execute(f"SELECT count(*) FROM {table} WHERE doc_id = 'bravo'").fetchone()
            assert count[0] == 0, table
    hits = search(after, hash_embedder, "bridge report event bridge3", k=50, method="dense")
    assert all(p.chunk.doc_id != "bravo" for p in hits)


def test_delete_unknown_id_raises_and_changes_nothing(writer: IndexWriter, data_dir: Path,
                                                      hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA])
    with pytest.raises(DocumentNotFound, match="nope"):
        writer.apply(add=[BRAVO], delete=["nope"])
    assert versions(data_dir) == ["v000001"]
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert [d["doc_id"] for d in snapshot.documents()] == ["alpha"]


def test_delete_on_empty_data_dir_raises(writer: IndexWriter) -> None:
    with pytest.raises(DocumentNotFound):
        writer.apply(delete=["alpha"])


def test_delete_everything_leaves_a_searchable_empty_index(
    writer: IndexWriter, data_dir: Path, hash_embedder: HashEmbedder
) -> None:
    writer.apply(add=[ALPHA])
    writer.apply(delete=["alpha"])
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.chunk_count == 0 == snapshot.vectors.ntotal
    assert search(snapshot, hash_embedder, "alpaca") == []
    writer.apply(add=[ALPHA])
    assert IndexSnapshot.open(data_dir, hash_embedder).document_count == 1


# ---------------------------------------------------------------------------------------------
# Crashes


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt()


@pytest.mark.parametrize("crash", [_raise_keyboard_interrupt, lambda: 1 / 0])
def test_crash_mid_ingest_keeps_previous_version(writer: IndexWriter, data_dir: Path,
                                                 hash_embedder: HashEmbedder, crash) -> None:
    writer.apply(add=[ALPHA])
    with pytest.raises((KeyboardInterrupt, ZeroDivisionError)):
        writer.apply(add=[BRAVO], delete=["alpha"], fail_after_embedding=crash)
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.version == "v000001"
    assert [d["doc_id"] for d in snapshot.documents()] == ["alpha"]
    assert_consistent(snapshot)
    assert versions(data_dir) == ["v000001"]

    # A later ingest (the lock was released) completes.
    result = writer.apply(add=[BRAVO], delete=["alpha"])
    assert result.version == "v000002"
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert [d["doc_id"] for d in snapshot.documents()] == ["bravo"]
    assert_consistent(snapshot)


# ---------------------------------------------------------------------------------------------
# A writer that has to wait embeds meanwhile


class _CountingEmbedder(HashEmbedder):
    """Counts the chunks it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_with_spans(self, texts, spans):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return super().embed_with_spans(texts, spans)


def _hold_and_wait_for_embedding(embedder: _CountingEmbedder,
                                 thread: threading.Thread) -> int:
    """Start ``thread`` and return what it embedded once it is blocked on the lock."""
    thread.start()
    deadline = time.monotonic() + 20
    while embedder.embedded == 0:  # it embeds although it cannot write yet
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    time.sleep(0.5)  # the hash embedder is instant: by now it waits for the lock
    assert thread.is_alive()
    return embedder.embedded


def test_a_waiting_writer_embeds_while_another_holds_the_index(
        writer: IndexWriter, data_dir: Path, tmp_path: Path) -> None:
    writer.apply([ALPHA])
    embedder = _CountingEmbedder()
    waiting = IndexWriter(data_dir, embedder)
    results: list[IngestResult] = []
    thread = threading.Thread(target=lambda: results.append(
        waiting.apply([ALPHA, BRAVO, CHARLIE], wait_seconds=30.0)))

    with EmbeddedStore(data_dir).transaction(HashEmbedder()):  # another writer holds it
        embedded_ahead = _hold_and_wait_for_embedding(embedder, thread)
    thread.join(30)
    (result,) = results
    assert result.added == ["bravo", "charlie"] and result.unchanged == ["alpha"]
    assert result.timings["ahead"] > 0
    # Everything new was embedded while waiting (ALPHA, unchanged, not at all), nothing after.
    assert embedder.embedded == embedded_ahead == result.chunks_embedded
    snapshot = IndexSnapshot.open(data_dir)
    assert_consistent(snapshot)
    IndexWriter(tmp_path / "reference", HashEmbedder()).apply([ALPHA, BRAVO, CHARLIE])
    expected = IndexSnapshot.open(tmp_path / "reference")
    assert sorted(chunk_texts(snapshot)) == sorted(chunk_texts(expected))
    query = "bridges over the Vakhsh"
    assert [p.chunk.text for p in search(snapshot, HashEmbedder(), query, 3)] == \
        [p.chunk.text for p in search(expected, HashEmbedder(), query, 3)]


def test_what_the_other_writer_changed_meanwhile_is_embedded_under_the_lock(
        writer: IndexWriter, data_dir: Path) -> None:
    writer.apply([ALPHA, BRAVO])
    embedder = _CountingEmbedder()
    waiting = IndexWriter(data_dir, embedder)
    results: list[IngestResult] = []
    # BRAVO is unchanged in the live version, so only CHARLIE is embedded ahead...
    thread = threading.Thread(target=lambda: results.append(
        waiting.apply([BRAVO, CHARLIE], wait_seconds=30.0)))

    store = EmbeddedStore(data_dir)
    with store.transaction(HashEmbedder()) as transaction:
        ahead = _hold_and_wait_for_embedding(embedder, thread)
        # ...but the writer holding the index deletes BRAVO before it lets go.
        nothing = np.zeros((0, HashEmbedder().dimension), np.float32)
        transaction.commit(ChangeSet(delete=frozenset({"bravo"}), add=[], chunk_vectors=nothing,
                                     sentence_vectors=[], chunking=ChunkingConfig()), {})
    thread.join(30)
    (result,) = results
    assert result.added == ["bravo", "charlie"]
    assert embedder.embedded > ahead  # BRAVO was embedded after all, under the lock
    assert embedder.embedded == result.chunks_embedded
    snapshot = IndexSnapshot.open(data_dir)
    assert snapshot.document("bravo")["text"] == BRAVO.text
    assert_consistent(snapshot)
