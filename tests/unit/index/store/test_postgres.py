"""What only the PostgreSQL store has to show: bad settings, concurrent writers from several
processes (each writer its own connection, as on several machines), snapshots pinned by
version while rows are purged, filtered search on both its paths, and the CLI on a database.

The contract every store meets is tested in ``test_contract.py`` against this store too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from corpus.errors import EmbeddingMismatch, IndexNotFound
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.store import Filters
from tests.unit.index.sample import ALPHA, BRAVO, CHARLIE, make_doc


@pytest.fixture
def store(database_url: str) -> Iterator[object]:
    from index.store.postgres import PostgresStore

    database = PostgresStore(database_url)
    yield database
    database.close()


def test_a_database_url_must_be_postgresql() -> None:
    from service.config import Settings

    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(database_url="mysql://somewhere/db")
    assert Settings(database_url="").database_url is None


def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    from index.store.postgres import PostgresStore

    url = f"postgresql://groundqa:secret@/nowhere?host={tmp_path}&connect_timeout=2"
    with pytest.raises(IndexNotFound, match="cannot use the database") as caught:
        PostgresStore(url)
    assert "secret" not in caught.value.message  # the password never reaches a message


def test_another_model_is_refused(store, hash_embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    IndexWriter(store, hash_embedder).apply(add=[ALPHA])
    with pytest.raises(EmbeddingMismatch):
        store.open(HashEmbedder(dimension=32, name="other/model"))
    with pytest.raises(EmbeddingMismatch):
        IndexWriter(store, HashEmbedder(dimension=32, name="other/model")).apply(add=[BRAVO])


def test_two_writers_at_once_neither_corrupt_nor_duplicate(store, database_url: str) -> None:  # type: ignore[no-untyped-def]
    from index.store.postgres import PostgresStore

    results = []

    def ingest() -> None:
        # Its own store and connections, as another process on another machine would have.
        other = PostgresStore(database_url)
        try:
            results.append(IndexWriter(other, HashEmbedder()).apply(
                add=[ALPHA, BRAVO, CHARLIE], wait_seconds=60))
        finally:
            other.close()

    threads = [threading.Thread(target=ingest) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r.added) for r in results) == [0, 0, 3]
    assert sorted(len(r.unchanged) for r in results) == [0, 3, 3]
    snapshot = store.open(HashEmbedder())
    assert snapshot.version == "v000001" and snapshot.document_count == 3
    with store.connection() as conn:
        live = conn.execute("SELECT doc_id, count(*) FROM gq_documents WHERE removed_in IS "
                            "NULL GROUP BY doc_id").fetchall()
        chunk_ids = conn.execute("SELECT chunk_id FROM gq_chunks").fetchall()
    assert sorted(live) == [("alpha", 1), ("bravo", 1), ("charlie", 1)]
    assert len(chunk_ids) == len(set(chunk_ids)) == snapshot.chunk_count


def test_an_old_snapshot_reads_its_version_until_rows_are_purged(
        store, hash_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import index.store.postgres as postgres

    IndexWriter(store, hash_embedder).apply(add=[ALPHA, BRAVO])
    old = store.open(hash_embedder)
    replaced = make_doc("alpha", ALPHA.text + " A new closing sentence about alpacas.")
    IndexWriter(store, hash_embedder).apply(add=[replaced], delete=["bravo"])
    # The old version still reads whole: its documents, texts, chunks and searches.
    assert [d["doc_id"] for d in old.documents()] == ["alpha", "bravo"]
    assert old.document("alpha")["text"] == ALPHA.text
    assert {old.chunk(r).doc_id for r in old.chunk_rows()} == {"alpha", "bravo"}
    assert old.lexical_search("bridge", 5, Filters()).rows
    new = store.open(hash_embedder)
    assert new.document("alpha")["text"] == replaced.text and not new.has_document("bravo")
    assert not new.lexical_search("bridge", 5, Filters()).rows
    # Once dead long enough, a later write purges the rows (and their terms and sentences).
    monkeypatch.setattr(postgres, "PURGE_AFTER_SECONDS", 0)
    IndexWriter(store, hash_embedder).apply(add=[CHARLIE])
    with store.connection() as conn:
        dead = conn.execute("SELECT count(*) FROM gq_chunks WHERE removed_in IS NOT NULL")
        assert dead.fetchone()[0] == 0
        orphans = conn.execute("SELECT count(*) FROM gq_chunk_terms t LEFT JOIN gq_chunks c "
                               "USING (row_id) WHERE c.row_id IS NULL").fetchone()[0]
        assert orphans == 0
    latest = store.open(hash_embedder)
    assert [d["doc_id"] for d in latest.documents()] == ["alpha", "charlie"]


def test_filtered_vector_search_is_exact_on_both_paths(
        store, hash_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import index.store.postgres_snapshot as postgres_snapshot

    moved = make_doc("charlie", CHARLIE.text, outlet="Other Outlet")
    IndexWriter(store, hash_embedder).apply(add=[ALPHA, BRAVO, moved])
    snapshot = store.open(hash_embedder)
    rows = snapshot.chunk_rows()
    vectors = snapshot.chunk_vectors(rows)
    query = vectors[0]
    wanted = [r for r in rows if snapshot.chunk(r).doc_id != "alpha"]
    truth = [wanted[i] for i in np.argsort(-(vectors[[rows.index(r) for r in wanted]] @ query),
                                           kind="stable")[:5]]
    filters = Filters(doc_ids=("bravo", "charlie"))
    exact = snapshot.vector_search(query, 5, filters)  # few rows pass: scanned exactly
    monkeypatch.setattr(postgres_snapshot, "EXACT_FILTER_ROWS", 0)  # now through the graph
    graph = snapshot.vector_search(query, 5, filters)
    scores = {r: float(vectors[rows.index(r)] @ query) for r in rows}
    assert [scores[r] for r in exact] == pytest.approx([scores[r] for r in truth])
    assert [scores[r] for r in graph] == pytest.approx([scores[r] for r in truth])


def test_the_cli_ingests_into_and_reads_from_the_database(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.cli import app

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "budget.txt").write_text("The council approved the new budget on Tuesday "
                                         "after a long debate in the chamber.\n")
    monkeypatch.setenv("GROUNDQA_DATABASE_URL", database_url)
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(tmp_path / "never-written"))
    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(articles), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["added"] == ["budget"]
    again = runner.invoke(app, ["ingest", str(articles), "--json"])
    assert json.loads(again.stdout)["unchanged"] == ["budget"]
    info = runner.invoke(app, ["index", "info", "--json"])
    assert info.exit_code == 0, info.output
    described = json.loads(info.stdout)
    assert described["documents"] == 1 and described["index_type"] == "pgvector-hnsw"
    assert described["size_bytes"] > 0 and "database" in described
    deleted = runner.invoke(app, ["documents", "delete", "budget"])
    assert deleted.exit_code == 0, deleted.output
    listed = runner.invoke(app, ["documents", "list", "--json"])
    assert json.loads(listed.stdout) == []
    assert not (tmp_path / "never-written").exists()


def test_processes_starting_together_on_a_new_database_all_connect(database_url: str) -> None:
    """Replicas (or ingests) started at once on a database without pgvector yet: each makes
    sure the extension exists, and none fails because another created it meanwhile."""
    from index.store.postgres import PostgresStore

    starters = 8
    barrier = threading.Barrier(starters)
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            stores.append(PostgresStore(database_url, pool_size=1))
        except BaseException as exc:  # noqa: BLE001 - collected and shown below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert not errors, errors[0]
    assert len(stores) == starters
