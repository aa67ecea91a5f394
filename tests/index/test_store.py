"""Tests for index/store.py: versioned ingest, replace, delete, crash safety, errors, readers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import (
    DocumentNotFound,
    EmbeddingMismatch,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
)
from corpus.loader import Document
from index.embedding import HashEmbedder
from index.search import search
from index.store import DataDir, IndexSnapshot, IndexWriter

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_doc(doc_id: str, text: str, outlet: str = "Test Outlet",
             published: str | None = "2023-01-15") -> Document:
    """A Document built directly, as the loader would produce it."""
    return Document(doc_id=doc_id, text=text, title=f"Title of {doc_id}", outlet=outlet,
                    published=published, source=f"test:{doc_id}")


def _sentences(topic: str, n: int) -> str:
    return " ".join(f"The {topic} report number {i} describes event {topic}{i} in detail."
                    for i in range(n))


ALPHA = make_doc("alpha", "Alpacas in the Pamir.\n\n" + _sentences("alpaca", 30))
BRAVO = make_doc("bravo", "Bridges over the Vakhsh.\n\n" + _sentences("bridge", 30))
CHARLIE = make_doc("charlie", "Camels near Termez.\n\n" + _sentences("camel", 12))


def _versions(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "versions").iterdir())


def _texts(snapshot: IndexSnapshot) -> list[str]:
    return [snapshot.chunk(r).text for r in snapshot.chunk_rows()]


def _assert_consistent(snapshot: IndexSnapshot) -> None:
    """FAISS, BM25, SQLite and sentence vectors all describe the same chunks."""
    rows = sorted(snapshot.chunk_rows())
    assert snapshot.vectors.ntotal == snapshot.chunk_count == snapshot.manifest["chunks"]
    assert sorted(int(r) for r in snapshot.lexical.row_ids) == rows
    for row in rows:  # every chunk row has a vector under its own id
        assert snapshot.vectors.reconstruct(int(row)).shape == (snapshot.vectors.d,)
    sentences = sum(len(snapshot.chunk_sentences(r)) for r in rows)
    assert sentences == snapshot.sentence_vectors.shape[0] == snapshot.manifest["sentences"]
    docs = {c.doc_id for c in map(snapshot.chunk, rows)}
    assert docs == {d["doc_id"] for d in snapshot.documents()}
    with sqlite3.connect(snapshot.path / "meta.sqlite") as db:
        assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == len(rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def writer(data_dir: Path, hash_embedder: HashEmbedder) -> IndexWriter:
    return IndexWriter(data_dir, hash_embedder)


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
    assert _versions(data_dir) == ["v000001"]
    assert (data_dir / "CURRENT").read_text() == before
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.document_count == 2
    _assert_consistent(snapshot)


def test_changed_document_replaces_its_chunks(writer: IndexWriter, data_dir: Path,
                                              hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA, BRAVO])
    old = IndexSnapshot.open(data_dir, hash_embedder)
    old_alpha_texts = [t for r in old.chunk_rows() if (t := old.chunk(r).text) and "alpaca" in t]
    assert old_alpha_texts

    new_alpha = make_doc("alpha", "Yaks in the Pamir.\n\n" + _sentences("yak", 8))
    result = writer.apply(add=[new_alpha, BRAVO])
    assert result.replaced == ["alpha"] and result.unchanged == ["bravo"]
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    _assert_consistent(snapshot)
    assert snapshot.version == "v000002"
    texts = _texts(snapshot)
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
    _assert_consistent(after)
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
    assert _versions(data_dir) == ["v000001"]
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


def test_old_versions_are_pruned(writer: IndexWriter, data_dir: Path) -> None:
    for i in range(5):
        writer.apply(add=[make_doc("alpha", f"Version {i} of the alpaca story is here.")])
    assert _versions(data_dir) == ["v000003", "v000004", "v000005"]


def test_open_snapshot_outlives_the_pruning_of_its_version(
        writer: IndexWriter, data_dir: Path, hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[make_doc("alpha", "The first alpaca story is told here in full.")])
    reader = IndexSnapshot.open(data_dir, hash_embedder)
    for i in range(4):
        writer.apply(add=[make_doc("alpha", f"Version {i} of the alpaca story is here.")])
    assert "v000001" not in _versions(data_dir)
    assert reader.document("alpha")["text"] == "The first alpaca story is told here in full."


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
    _assert_consistent(snapshot)
    assert _versions(data_dir) == ["v000001"]

    # A later ingest (the lock was released) completes.
    result = writer.apply(add=[BRAVO], delete=["alpha"])
    assert result.version == "v000002"
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert [d["doc_id"] for d in snapshot.documents()] == ["bravo"]
    _assert_consistent(snapshot)


def test_next_ingest_removes_leftover_temporaries(writer: IndexWriter, data_dir: Path) -> None:
    writer.apply(add=[ALPHA])
    leftover = data_dir / "versions" / ".tmp-v000002-deadbeef"
    leftover.mkdir()
    (leftover / "meta.sqlite").write_bytes(b"half written")
    writer.apply(add=[BRAVO])
    assert not leftover.exists()
    assert _versions(data_dir) == ["v000001", "v000002"]


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import index.store as store
    from corpus.loader import Document
    from index.embedding import HashEmbedder

    data_dir, flag, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def pause():
        flag.write_text("paused")
        time.sleep(120)

    if stage == "write":  # killed while the temporary version is being written
        original = store.LexicalIndex.build
        def build(*args, **kwargs):
            pause()
            return original(*args, **kwargs)
        store.LexicalIndex.build = build
    else:  # killed after the version was renamed into place, before CURRENT moved
        original_set = store.DataDir.set_current
        def set_current(self, name):
            pause()
            original_set(self, name)
        store.DataDir.set_current = set_current

    doc = Document(doc_id="bravo", text="Bridges over the Vakhsh river. " * 40, title="Bravo",
                   outlet="Test Outlet", published="2023-01-15")
    store.IndexWriter(data_dir, HashEmbedder()).apply(add=[doc])
    """
)


@pytest.mark.parametrize("stage", ["write", "publish"])
def test_sigkill_mid_write_leaves_previous_version(writer: IndexWriter, data_dir: Path,
                                                   hash_embedder: HashEmbedder, tmp_path: Path,
                                                   stage: str) -> None:
    writer.apply(add=[ALPHA])
    flag = tmp_path / "flag"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data_dir), str(flag), stage],
                             env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert child.poll() is None, "writer subprocess exited early"
            assert time.monotonic() < deadline, "writer subprocess never reached the write"
            time.sleep(0.05)
        # The child holds the writer lock right now.
        with pytest.raises(IndexBusy):
            writer.apply(add=[CHARLIE])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.version == "v000001"
    assert [d["doc_id"] for d in snapshot.documents()] == ["alpha"]
    _assert_consistent(snapshot)

    # The dead writer's lock is gone; the next ingest completes and cleans up.
    result = writer.apply(add=[CHARLIE])
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.version == result.version
    assert [d["doc_id"] for d in snapshot.documents()] == ["alpha", "charlie"]
    _assert_consistent(snapshot)
    assert not list((data_dir / "versions").glob(".tmp-*"))


# ---------------------------------------------------------------------------------------------
# Opening errors


def test_different_embedder_raises_embedding_mismatch(writer: IndexWriter,
                                                      data_dir: Path) -> None:
    writer.apply(add=[ALPHA])
    with pytest.raises(EmbeddingMismatch, match="32-d"):
        IndexSnapshot.open(data_dir, HashEmbedder(dimension=32))
    with pytest.raises(EmbeddingMismatch, match="other/model"):
        IndexSnapshot.open(data_dir, HashEmbedder(name="other/model"))
    with pytest.raises(EmbeddingMismatch):
        IndexWriter(data_dir, HashEmbedder(dimension=32)).apply(add=[BRAVO])
    assert _versions(data_dir) == ["v000001"]


def test_missing_current_raises_index_not_found(tmp_path: Path,
                                                hash_embedder: HashEmbedder) -> None:
    with pytest.raises(IndexNotFound):
        IndexSnapshot.open(tmp_path / "never-created", hash_embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFound):
        IndexSnapshot.open(tmp_path / "empty", hash_embedder)


def test_current_pointing_nowhere_raises_index_corrupt(writer: IndexWriter, data_dir: Path,
                                                      hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA])
    (data_dir / "CURRENT").write_text("v000099\n")
    with pytest.raises(IndexCorrupt):
        IndexSnapshot.open(data_dir, hash_embedder)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_damaged_vectors_file_raises_index_corrupt(writer: IndexWriter, data_dir: Path,
                                                   hash_embedder: HashEmbedder,
                                                   damage: str) -> None:
    result = writer.apply(add=[ALPHA])
    vectors = data_dir / "versions" / str(result.version) / "vectors.faiss"
    if damage == "garbage":
        vectors.write_bytes(b"this is not a faiss index" * 10)
    elif damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:100])
    else:
        vectors.unlink()
    with pytest.raises(IndexCorrupt, match="v000001"):
        IndexSnapshot.open(data_dir, hash_embedder)


def test_damaged_manifest_raises_index_corrupt(writer: IndexWriter, data_dir: Path,
                                               hash_embedder: HashEmbedder) -> None:
    result = writer.apply(add=[ALPHA])
    (data_dir / "versions" / str(result.version) / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt):
        IndexSnapshot.open(data_dir, hash_embedder)


# ---------------------------------------------------------------------------------------------
# Readers and writers


def test_open_snapshot_keeps_answering_from_its_version(writer: IndexWriter, data_dir: Path,
                                                        hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA, BRAVO])
    reader = IndexSnapshot.open(data_dir, hash_embedder)
    query = "bridge report event bridge2"
    before = [(p.chunk.chunk_id, p.score) for p in search(reader, hash_embedder, query, k=5)]

    writer.apply(add=[CHARLIE], delete=["bravo"])
    assert IndexSnapshot.open(data_dir, hash_embedder).version == "v000002"
    assert reader.version == "v000001"
    assert reader.has_document("bravo") and not reader.has_document("charlie")
    after = [(p.chunk.chunk_id, p.score) for p in search(reader, hash_embedder, query, k=5)]
    assert after == before
    assert reader.document("bravo")["text"] == BRAVO.text


def test_concurrent_writer_gets_index_busy(writer: IndexWriter, data_dir: Path,
                                           hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA])
    with DataDir(data_dir).writer_lock():
        with pytest.raises(IndexBusy):
            IndexWriter(data_dir, hash_embedder).apply(add=[BRAVO])
    assert _versions(data_dir) == ["v000001"]
    assert writer.apply(add=[BRAVO]).added == ["bravo"]


def test_sentence_vectors_align_with_sentences(writer: IndexWriter, data_dir: Path,
                                               hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA, CHARLIE])
    writer.apply(delete=["alpha"])  # renumbers the sentence rows
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    text = snapshot.document("charlie")["text"]
    for row in snapshot.chunk_rows():
        for sentence in snapshot.chunk_sentences(row):
            expected = hash_embedder.embed([text[sentence.start : sentence.end]])[0]
            np.testing.assert_allclose(snapshot.sentence_vectors[sentence.row], expected,
                                       atol=1e-6)
