"""Tests for index/chunking.py: exact offsets, coverage, budgets, overlap, model input limits."""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable

import pytest

from corpus.loader import Document
from index.chunking import (
    Chunk,
    ChunkingConfig,
    chunk_document,
    count_tokens,
    split_sentences,
)
from index.embedding import MAX_WORD_PIECES, HashEmbedder, SentenceTransformerEmbedder

CONFIG = ChunkingConfig()


def _check_chunks(text: str, chunks: list[Chunk], config: ChunkingConfig = CONFIG) -> None:
    """Invariants every chunking must satisfy."""
    assert chunks, "no chunks"
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == count_tokens(chunk.text)
        assert chunk.token_count <= config.max_tokens
        # Sentence spans are exact, ordered, inside the chunk and tile its ends.
        assert chunk.sentences[0].start == chunk.start
        assert chunk.sentences[-1].end == chunk.end
        for a, b in zip(chunk.sentences, chunk.sentences[1:], strict=False):
            assert a.end <= b.start
            assert text[a.end : b.start].strip() == ""
        for s in chunk.sentences:
            piece = text[s.start : s.end]
            assert piece and piece == piece.strip()
    # Chunks advance and leave no gap: every non-space character is in some chunk.
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start and a.end < b.end
        assert b.start <= a.end or text[a.end : b.start].strip() == ""
    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    uncovered = "".join(ch for ch, c in zip(text, covered, strict=True) if not c)
    assert uncovered.strip() == ""


# ---------------------------------------------------------------------------------------------
# The seed articles


def test_seed_chunks_are_exact_slices_within_budget(seed_documents: list[Document]) -> None:
    for doc in seed_documents:
        chunks = chunk_document(doc.doc_id, doc.text, CONFIG, HashEmbedder().count_word_pieces)
        _check_chunks(doc.text, chunks)
        assert all(c.doc_id == doc.doc_id for c in chunks)
        assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_every_sentence_is_in_a_chunk(seed_documents: list[Document]) -> None:
    for doc in seed_documents:
        chunks = chunk_document(doc.doc_id, doc.text)
        chunk_sentences = {(s.start, s.end) for c in chunks for s in c.sentences}
        for sentence in split_sentences(doc.text):
            # Short sentences are kept whole; none of the seed sentences is over budget.
            assert (sentence.start, sentence.end) in chunk_sentences, doc.text[
                sentence.start : sentence.end
            ]


def test_sentence_spans_are_exact_on_seed(seed_documents: list[Document]) -> None:
    doc = next(d for d in seed_documents if d.doc_id.startswith("004"))
    sentences = [doc.text[s.start : s.end] for s in split_sentences(doc.text)]
    assert sentences[0] == (
        "ISIS Threat Is Growing In Cenral Asia Amid Expanding US Activity In Tajikistan"
    )
    assert "A new militant hotbed is brewing in the Central Asia." in sentences
    assert (
        "Almost 6,000 of those arrived in 2019 alone, military journalist Simeon Pegov, in his "
        "Telegram Channel, quoted the general as having said." in sentences
    )
    # Sentences never cross a paragraph break.
    assert all("\n\n" not in s for s in sentences)


def test_consecutive_chunks_overlap_on_seed(seed_documents: list[Document]) -> None:
    overlapping = total = 0
    for doc in seed_documents:
        chunks = chunk_document(doc.doc_id, doc.text)
        for a, b in zip(chunks, chunks[1:], strict=False):
            total += 1
            if b.start < a.end:
                overlapping += 1
                shared = doc.text[b.start : a.end]
                # The overlap is whole trailing sentences of ``a`` within the overlap budget,
                # or a single (longer) sentence is never repeated.
                assert shared in {doc.text[s.start : a.end] for s in a.sentences}
                assert count_tokens(shared) <= CONFIG.overlap_tokens + 2
    assert total >= 5
    assert overlapping >= total // 2


def test_overlap_on_short_sentences() -> None:
    text = " ".join(f"Sentence number {i} is short." for i in range(200))
    chunks = chunk_document("d", text, ChunkingConfig(max_tokens=60, overlap_tokens=16))
    _check_chunks(text, chunks, ChunkingConfig(max_tokens=60, overlap_tokens=16))
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive chunks share trailing sentences"
        assert a.sentences[-1] in b.sentences


def test_no_overlap_when_disabled() -> None:
    text = " ".join(f"Sentence number {i} is short." for i in range(100))
    config = ChunkingConfig(max_tokens=60, overlap_tokens=0)
    chunks = chunk_document("d", text, config)
    _check_chunks(text, chunks, config)
    assert all(b.start > a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_chunk_ids_and_hashes() -> None:
    a = chunk_document("doc-1", "One sentence here. Another sentence there.")
    b = chunk_document("doc-1", "One sentence here. Another sentence there.")
    assert [c.chunk_id for c in a] == ["doc-1#0"]
    assert a[0].content_hash == b[0].content_hash


# ---------------------------------------------------------------------------------------------
# Pathological inputs


def _pathological_texts() -> dict[str, str]:
    rng = random.Random(7)
    vocabulary = ["border", "militants", "Tajikistan", "said", "the", "camps", "region", "and"]
    run_on = " ".join(rng.choice(vocabulary) for _ in range(2000))
    names = " ".join(
        f"Xq{rng.randint(0, 10**6)}zv Kh{chr(97 + rng.randint(0, 25))}jnqw{rng.randint(10, 99)}"
        for _ in range(400)
    )
    numbers = ", ".join(f"{rng.randint(10**8, 10**9)}.{rng.randint(10, 99)}" for _ in range(400))
    return {
        "run_on_sentence": f"Intro sentence. {run_on}. Outro sentence.",
        "rare_names": f"The list follows: {names}.",
        "numbers": f"Figures: {numbers}.",
        "cjk_without_spaces": "中亚边境安全局势紧张" * 60 + "。",
        "long_url": "See https://example.org/" + "abc/def-" * 300 + " for details.",
        "one_long_word": "Start. " + "x" * 5000 + " end.",
    }


PATHOLOGICAL = _pathological_texts()


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_text_respects_token_budget(name: str) -> None:
    text = PATHOLOGICAL[name]
    chunks = chunk_document(name, text, CONFIG, HashEmbedder().count_word_pieces)
    _check_chunks(text, chunks)


def _word_pieces(embedder: SentenceTransformerEmbedder) -> Callable[[str], int]:
    return embedder.count_word_pieces


@pytest.mark.model
def test_seed_chunks_fit_the_real_model(
    real_embedder: SentenceTransformerEmbedder, seed_documents: list[Document]
) -> None:
    for doc in seed_documents:
        chunks = chunk_document(doc.doc_id, doc.text, CONFIG, _word_pieces(real_embedder))
        _check_chunks(doc.text, chunks)
        assert all(real_embedder.count_word_pieces(c.text) <= MAX_WORD_PIECES for c in chunks)


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_chunks_are_never_truncated_by_the_model(
    real_embedder: SentenceTransformerEmbedder, name: str
) -> None:
    text = PATHOLOGICAL[name]
    chunks = chunk_document(name, text, CONFIG, _word_pieces(real_embedder))
    _check_chunks(text, chunks)
    assert real_embedder.max_seq_length == MAX_WORD_PIECES
    for chunk in chunks:
        # count_word_pieces does not truncate, so this proves the model sees the whole chunk.
        assert real_embedder.count_word_pieces(chunk.text) <= MAX_WORD_PIECES, chunk.text[:80]
    # _check_chunks proved that every non-space character is inside some chunk.


@pytest.mark.model
def test_word_piece_limit_binds_before_tiktoken_budget(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    # A generous tiktoken budget: only the embedder's limit keeps chunks from being truncated.
    config = ChunkingConfig(max_tokens=2000, overlap_tokens=0)
    text = PATHOLOGICAL["rare_names"]
    unlimited = chunk_document("d", text, config)
    assert max(real_embedder.count_word_pieces(c.text) for c in unlimited) > MAX_WORD_PIECES
    chunks = chunk_document("d", text, config, _word_pieces(real_embedder))
    assert len(chunks) > 1
    assert all(real_embedder.count_word_pieces(c.text) <= MAX_WORD_PIECES for c in chunks)


TRICKY_TEXTS = [
    "Mr. Smith went to Washington. He met Dr. Jones at 5 p.m. on Jan. 3. It rained.",
    "It rained.  It rained.\nIt rained. Then the U.S. team won 3-1, i.e. easily.",
    "Prices rose 2.5% (from $1.2bn). Analysts, e.g. at St. Mary's, said: 'Wait.' Done!",
    "No punctuation at all in this one",
    "A.\n\n\tB. ... C?! \u00a0D\u2026 E.",
    "",
    "   ",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_the_segmenter_finds_the_same_spans_as_pysbd(text: str) -> None:
    import pysbd

    from index.chunking import _segmenter

    plain = pysbd.Segmenter(language="en", clean=False, char_span=True)
    ours = _segmenter()
    assert [(s.sent, s.start, s.end) for s in ours.segment(text)] == \
        [(s.sent, s.start, s.end) for s in plain.segment(text)]


def test_pysbd_patterns_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import re._compiler

    from index.chunking import split_sentences

    text = ("Gen. Lee met Sen. Ross and Gov. Hale in Jan. and Feb. of that year. "
            "Prof. Kim, Capt. Ames and Sgt. Ortiz arrived on Mon. morning. ") * 3
    split_sentences(text)  # warm: every pattern this text needs is compiled now
    compiled: list[object] = []
    original = re._compiler.compile

    def counting(*args: object, **kwargs: object) -> object:
        if any("pysbd" in frame.filename for frame in traceback.extract_stack()):
            compiled.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(re._compiler, "compile", counting)
    for _ in range(3):
        re.purge()  # as when a corpus's patterns overflow re's own cache of 512
        split_sentences(text)
    # Before, pysbd's per-abbreviation and per-sentence patterns overflowed re's cache.
    assert compiled == []
