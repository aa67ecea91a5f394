"""Sample documents and checks shared by the index tests (ingest and the embedded store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from corpus.loader import Document
from index.store import IndexSnapshot


def make_doc(doc_id: str, text: str, outlet: str = "Test Outlet",
             published: str | None = "2023-01-15") -> Document:
    """A Document built directly, as the loader would produce it."""
    return Document(doc_id=doc_id, text=text, title=f"Title of {doc_id}", outlet=outlet,
                    published=published, source=f"test:{doc_id}")


def sentences(topic: str, n: int) -> str:
    """``n`` distinct sentences about ``topic``."""
    return " ".join(f"The {topic} report number {i} describes event {topic}{i} in detail."
                    for i in range(n))


ALPHA = make_doc("alpha", "Alpacas in the Pamir.\n\n" + sentences("alpaca", 30))
BRAVO = make_doc("bravo", "Bridges over the Vakhsh.\n\n" + sentences("bridge", 30))
CHARLIE = make_doc("charlie", "Camels near Termez.\n\n" + sentences("camel", 12))


def versions(data_dir: Path) -> list[str]:
    """Version directories on disk (including unfinished ones), sorted."""
    return sorted(p.name for p in (data_dir / "versions").iterdir())


def chunk_texts(snapshot: IndexSnapshot) -> list[str]:
    """Texts of every chunk of a snapshot."""
    return [snapshot.chunk(r).text for r in snapshot.chunk_rows()]


def assert_consistent(snapshot: IndexSnapshot) -> None:
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
