"""Tests for index/store/embedded.py (+ layout, writer): versions, pruning, crashes, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import (
    EmbeddingMismatch,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
)
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.retrieve import search
from index.store import DataDir, IndexSnapshot
from tests.unit.index.sample import ALPHA, BRAVO, CHARLIE, assert_consistent, make_doc, versions

REPO_ROOT = Path(__file__).resolve().parents[4]


# ---------------------------------------------------------------------------------------------
# Versions on disk


def test_old_versions_are_pruned(writer: IndexWriter, data_dir: Path) -> None:
    for i in range(5):
        writer.apply(add=[make_doc("alpha", f"Version {i} of the alpaca story is here.")])
    assert versions(data_dir) == ["v000003", "v000004", "v000005"]


def test_open_snapshot_outlives_the_pruning_of_its_version(
        writer: IndexWriter, data_dir: Path, hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[make_doc("alpha", "The first alpaca story is told here in full.")])
    reader = IndexSnapshot.open(data_dir, hash_embedder)
    for i in range(4):
        writer.apply(add=[make_doc("alpha", f"Version {i} of the alpaca story is here.")])
    assert "v000001" not in versions(data_dir)
    assert reader.document("alpha")["text"] == "The first alpaca story is told here in full."


def test_next_ingest_removes_leftover_temporaries(writer: IndexWriter, data_dir: Path) -> None:
    writer.apply(add=[ALPHA])
    leftover = data_dir / "versions" / ".tmp-v000002-deadbeef"
    leftover.mkdir()
    (leftover / "meta.sqlite").write_bytes(b"half written")
    writer.apply(add=[BRAVO])
    assert not leftover.exists()
    assert versions(data_dir) == ["v000001", "v000002"]


# ---------------------------------------------------------------------------------------------
# Crashes


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from corpus.loader import Document
    from index.embedding import HashEmbedder
    from index.ingest import IndexWriter
    from index.lexical import LexicalIndex
    from index.store.layout import DataDir

    data_dir, flag, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def pause():
        flag.write_text("paused")
        time.sleep(120)

    if stage == "write":  # killed while the temporary version is being written
        original = LexicalIndex.build
        def build(*args, **kwargs):
            pause()
            return original(*args, **kwargs)
        LexicalIndex.build = build
    else:  # killed after the version was renamed into place, before CURRENT moved
        original_set = DataDir.set_current
        def set_current(self, name):
            pause()
            original_set(self, name)
        DataDir.set_current = set_current

    doc = Document(doc_id="bravo", text="Bridges over the Vakhsh river. " * 40, title="Bravo",
                   outlet="Test Outlet", published="2023-01-15")
    IndexWriter(data_dir, HashEmbedder()).apply(add=[doc])
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
    assert_consistent(snapshot)

    # The dead writer's lock is gone; the next ingest completes and cleans up.
    result = writer.apply(add=[CHARLIE])
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    assert snapshot.version == result.version
    assert [d["doc_id"] for d in snapshot.documents()] == ["alpha", "charlie"]
    assert_consistent(snapshot)
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
    assert versions(data_dir) == ["v000001"]


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
    assert versions(data_dir) == ["v000001"]
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
