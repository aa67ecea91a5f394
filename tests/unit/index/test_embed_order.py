"""Ingest embeds chunks longest first across the ingest; each vector stays with its chunk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.chunking import chunk_document
from index.embedding import HashEmbedder
from index.embedding.contract import SpanEmbeddings
from index.ingest import EMBED_BATCH, IndexWriter
from tests.unit.index.sample import make_doc, sentences


class RecordingEmbedder(HashEmbedder):
    """The hash embedder, remembering the texts of every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed_with_spans(self, texts: Sequence[str],
                         spans: Sequence[Sequence[tuple[int, int]]]) -> list[SpanEmbeddings]:
        self.batches.append(list(texts))
        return super().embed_with_spans(texts, spans)


def test_batches_are_sorted_across_the_ingest_and_vectors_stay_with_their_chunks(
        tmp_path: Path) -> None:
    embedder = RecordingEmbedder()
    writer = IndexWriter(tmp_path / "data", embedder)
    # Documents of very different lengths, short ones first, so that batches in document
    # order would mix long and short chunks.
    docs = [make_doc(f"d{i}", sentences(f"topic{i}", 1 + (i * 7) % 23)) for i in range(150)]
    chunks = [c for d in docs
              for c in chunk_document(d.doc_id, d.text, writer.chunking,
                                      embedder.count_word_pieces)]
    assert len(chunks) > 2 * EMBED_BATCH

    chunk_vectors, sentence_vectors = writer._embed(chunks, None)

    lengths = [len(t) for batch in embedder.batches for t in batch]
    by_text = {c.text: c.token_count for c in chunks}
    counts = [by_text[t] for batch in embedder.batches for t in batch]
    assert counts == sorted(counts, reverse=True)
    assert len(lengths) == len(chunks)
    for i, chunk in enumerate(chunks):
        spans = [(s.start - chunk.start, s.end - chunk.start) for s in chunk.sentences]
        alone = HashEmbedder().embed_with_spans([chunk.text], [spans])[0]
        np.testing.assert_allclose(chunk_vectors[i], alone.text, rtol=1e-6)
        np.testing.assert_allclose(sentence_vectors[i], alone.spans, rtol=1e-6)
