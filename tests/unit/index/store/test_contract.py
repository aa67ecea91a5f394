"""Tests for index/store/contract.py: what every store must do, run against each store.

Only the contract's methods are used here, so a new store (PostgreSQL, issue 13) joins by adding
its name to ``STORES`` and a branch to the ``store`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import DocumentNotFound, IndexBusy, IndexNotFound
from index.chunking import ChunkingConfig
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.store import ChangeSet, EmbeddedStore, Filters, Snapshot, Store
from tests.unit.index.sample import ALPHA, BRAVO, CHARLIE, make_doc

STORES = ["embedded", "postgres"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "embedded":
        yield EmbeddedStore(tmp_path / "data")
    elif request.param == "postgres":
        from index.store.postgres import PostgresStore

        database = PostgresStore(request.getfixturevalue("database_url"))
        yield database
        database.close()
    else:
        raise AssertionError(request.param)


@pytest.fixture
def filled(store: Store, hash_embedder: HashEmbedder) -> Snapshot:
    moved = make_doc("charlie", CHARLIE.text, outlet="Other Outlet", published="2022-06-01")
    IndexWriter(store, hash_embedder).apply(add=[ALPHA, BRAVO, moved])
    return store.open(hash_embedder)


def test_an_empty_store_has_no_version(store: Store, hash_embedder: HashEmbedder) -> None:
    assert store.current_version() is None
    with pytest.raises(IndexNotFound):
        store.open(hash_embedder)
    with store.transaction(hash_embedder) as transaction:
        assert transaction.base is None


def test_documents(filled: Snapshot) -> None:
    assert filled.document_count == 3
    listed = filled.documents()
    assert [d["doc_id"] for d in listed] == ["alpha", "bravo", "charlie"]
    assert all("text" not in d for d in listed)
    assert filled.document("bravo")["text"] == BRAVO.text
    assert filled.document_meta("charlie")["outlet"] == "Other Outlet"
    assert filled.has_document("alpha") and not filled.has_document("nope")
    with pytest.raises(DocumentNotFound):
        filled.document("nope")
    with pytest.raises(DocumentNotFound):
        filled.document_meta("nope")


def test_chunks_and_sentences(filled: Snapshot, hash_embedder: HashEmbedder) -> None:
    rows = filled.chunk_rows()
    assert len(rows) == filled.chunk_count > 3
    vectors = filled.chunk_vectors(rows)
    assert vectors.shape == (len(rows), hash_embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert filled.chunk_vectors([]).shape == (0, hash_embedder.dimension)
    seen: set[tuple[str, int, int]] = set()
    for row in rows:
        chunk = filled.chunk(row)
        text = filled.document(chunk.doc_id)["text"]
        assert text[chunk.start : chunk.end] == chunk.text
        for sentence in filled.chunk_sentences(row):
            assert sentence.chunk_row == row and sentence.doc_id == chunk.doc_id
            assert chunk.start <= sentence.start < sentence.end <= chunk.end
            seen.add((sentence.doc_id, sentence.start, sentence.end))
    assert len(seen) == sum(len(filled.chunk_sentences(r)) for r in rows)  # each once


def test_vector_search_with_filters(filled: Snapshot) -> None:
    rows = filled.chunk_rows()
    target = rows[len(rows) // 2]
    query = filled.chunk_vectors([target])[0]
    found = filled.vector_search(query, 5, Filters())
    assert found[0] == target and len(found) == 5
    other = filled.vector_search(query, 50, Filters(outlets=("other outlet",)))
    assert other and {filled.chunk(r).doc_id for r in other} == {"charlie"}
    dated = filled.vector_search(query, 50, Filters(published_to="2022-12-31"))
    assert {filled.chunk(r).doc_id for r in dated} == {"charlie"}
    assert filled.vector_search(query, 5, Filters(doc_ids=("nope",))) == []


def test_lexical_search_with_filters(filled: Snapshot) -> None:
    hits = filled.lexical_search("bridge Vakhsh", 3, Filters())
    assert 0 < len(hits.rows) <= 3
    assert {filled.chunk(r).doc_id for r in hits.rows} == {"bravo"}
    scores = hits.scores(hits.rows)
    assert scores.dtype == np.float32 and (scores > 0).all()
    assert list(scores) == sorted(scores, reverse=True)
    others = [r for r in filled.chunk_rows() if filled.chunk(r).doc_id == "alpha"]
    assert not hits.scores(others).any()
    assert filled.lexical_search("bridge Vakhsh", 3, Filters(doc_ids=("alpha",))).rows == []
    assert filled.lexical_search("zebra", 3, Filters()).rows == []


def test_a_snapshot_keeps_its_version(store: Store, filled: Snapshot,
                                      hash_embedder: HashEmbedder) -> None:
    result = IndexWriter(store, hash_embedder).apply(delete=["bravo"])
    assert store.current_version() == result.version != filled.version
    assert filled.has_document("bravo") and filled.document("bravo")["text"] == BRAVO.text
    latest = store.open(hash_embedder)
    assert not latest.has_document("bravo") and latest.document_count == 2
    assert store.open(hash_embedder, filled.version).has_document("bravo")


def test_a_change_set_is_all_or_nothing(store: Store, filled: Snapshot,
                                        hash_embedder: HashEmbedder) -> None:
    with pytest.raises(RuntimeError), store.transaction(hash_embedder) as transaction:
        assert transaction.base is not None and transaction.base.version == filled.version
        raise RuntimeError("the writer died before committing")
    assert store.current_version() == filled.version

    with store.transaction(hash_embedder) as transaction:
        change = ChangeSet(delete=frozenset({"alpha"}), add=[],
                           chunk_vectors=np.zeros((0, hash_embedder.dimension), np.float32),
                           sentence_vectors=[], chunking=ChunkingConfig())
        version = transaction.commit(change, {})
    assert store.current_version() == version
    latest = store.open(hash_embedder)
    assert [d["doc_id"] for d in latest.documents()] == ["bravo", "charlie"]
    assert all(latest.chunk(r).doc_id != "alpha" for r in latest.chunk_rows())


def test_one_writer_at_a_time(store: Store, hash_embedder: HashEmbedder) -> None:
    with store.transaction(hash_embedder), pytest.raises(IndexBusy):
        IndexWriter(store, hash_embedder).apply(add=[ALPHA])
    assert IndexWriter(store, hash_embedder).apply(add=[ALPHA]).added == ["alpha"]
