"""Ingest chunks in a background thread while it embeds, longest chunks known first; each
vector stays with its chunk and errors on either side stop both."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index.chunking import chunk_document
from index.embedding import HashEmbedder
from index.embedding.contract import SpanEmbeddings
from index.ingest import EMBED_BATCH, IndexWriter
from tests.unit.index.sample import make_doc, sentences


class RecordingEmbedder(HashEmbedder):
    """The hash embedder, remembering the texts of every batch and the thread it ran on;
    ``delay`` seconds in the first batch let the chunking finish meanwhile."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail_at = fail_at
        self.threads: set[str] = set()

    def embed_with_spans(self, texts: Sequence[str],
                         spans: Sequence[Sequence[tuple[int, int]]]) -> list[SpanEmbeddings]:
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            raise RuntimeError("the model failed")
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if len(self.batches) == 1:
            time.sleep(self.delay)
        return super().embed_with_spans(texts, spans)


def _documents() -> list:  # type: ignore[type-arg]
    # Documents of very different lengths, short ones first, so that batches in document
    # order would mix long and short chunks.
    return [make_doc(f"d{i}", sentences(f"topic{i}", 1 + (i * 7) % 23)) for i in range(150)]


def test_every_chunk_is_embedded_once_longest_first_with_its_own_vectors(
        tmp_path: Path) -> None:
    embedder = RecordingEmbedder(delay=1.0)
    writer = IndexWriter(tmp_path / "data", embedder)
    docs = _documents()
    seen: list[tuple[int, int]] = []
    timings: dict[str, float] = {}
    out = writer._chunk_and_embed(docs, lambda done, known: seen.append((done, known)), timings)

    expected = {d.doc_id: chunk_document(d.doc_id, d.text, writer.chunking,
                                         embedder.count_word_pieces) for d in docs}
    total = sum(len(c) for c in expected.values())
    assert total > 2 * EMBED_BATCH
    texts = [t for batch in embedder.batches for t in batch]
    assert sorted(texts) == sorted(c.text for cs in expected.values() for c in cs)
    assert all(len(batch) <= EMBED_BATCH for batch in embedder.batches)
    by_text = {c.text: c.token_count for cs in expected.values() for c in cs}
    for batch in embedder.batches:  # each batch: the longest chunks known when it started
        counts = [by_text[t] for t in batch]
        assert counts == sorted(counts, reverse=True)
    # The chunking finished during the first batch, so every later one chose among all
    # chunks: no later batch holds a chunk longer than an earlier batch's.
    later = [[by_text[t] for t in batch] for batch in embedder.batches[1:]]
    assert all(min(a) >= max(b) for a, b in zip(later, later[1:], strict=False))
    assert embedder.threads == {threading.current_thread().name}
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert {"chunk", "chunk_wait", "embed"} <= set(timings)

    for doc in docs:
        part = out[(doc.doc_id, doc.content_hash)]
        assert [c.text for c in part.chunks] == [c.text for c in expected[doc.doc_id]]
        for i, chunk in enumerate(part.chunks):
            spans = [(s.start - chunk.start, s.end - chunk.start) for s in chunk.sentences]
            alone = HashEmbedder().embed_with_spans([chunk.text], [spans])[0]
            np.testing.assert_allclose(part.chunk_vectors[i], alone.text, rtol=1e-6)
            np.testing.assert_allclose(part.sentence_vectors[i], alone.spans, rtol=1e-6)


def test_a_model_error_stops_the_chunking_and_reaches_the_caller(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path / "data", RecordingEmbedder(fail_at=1))
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="the model failed"):
        writer._chunk_and_embed(_documents(), None, {})
    assert threading.active_count() == before


def test_a_chunking_error_reaches_the_caller_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot chunk this")

    writer = IndexWriter(tmp_path / "data", RecordingEmbedder())
    monkeypatch.setattr("index.ingest.chunk_document", broken)
    with pytest.raises(ValueError, match="cannot chunk this"):
        writer.apply(_documents()[:3])
    assert writer.store.current_version() is None


def test_no_documents_embed_nothing(tmp_path: Path) -> None:
    embedder = RecordingEmbedder()
    assert IndexWriter(tmp_path / "data", embedder)._chunk_and_embed([], None, {}) == {}
    assert embedder.batches == []
