"""Tests for index/ingest.py: add, skip unchanged, replace, delete, crash before the write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from corpus.errors import DocumentNotFound
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.retrieve import search
from index.store import IndexSnapshot
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
