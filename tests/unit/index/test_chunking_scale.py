"""Chunking is linear in the length of the text (issue 14, item 6).

A 1 MB upload that was one long unpunctuated sentence held the writer for minutes: the sentence
splitter's cost grew with the square of a paragraph, and an overlong sentence was re-tokenized
once per word. These tests count the work instead of timing it: the characters handed to the
sentence splitter, the tokenizer and the embedder's word-piece counter.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import index.chunking as chunking
from index.chunking import WHOLE_PARAGRAPH, Chunk, chunk_document, count_tokens
from index.embedding import HashEmbedder

_WORDS = ["border", "militants", "river", "outpost", "grant", "valley", "security", "troops",
          "village", "report", "officials", "said", "the", "and", "of"]


def unpunctuated(size: int, seed: int = 1) -> str:
    """One sentence of ``size`` characters without punctuation (the reported upload)."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        words.append(rng.choice(_WORDS))
        length += len(words[-1]) + 1
    return " ".join(words)[:size].rstrip()


def one_paragraph(size: int, seed: int = 2) -> str:
    """One paragraph of ``size`` characters made of ordinary 12-word sentences."""
    rng = random.Random(seed)
    sentences: list[str] = []
    length = 0
    while length < size:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(12)).capitalize() + "."
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:size].rstrip()


@dataclass
class Work:
    """Characters each costly step was handed while chunking one text."""

    segmented: list[int] = field(default_factory=list)  # one entry per pysbd call
    tokenized: int = 0
    word_pieces: int = 0

    @property
    def total(self) -> int:
        return sum(self.segmented) + self.tokenized + self.word_pieces


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Work, Callable[[str], int]]]:
    """Count what chunking hands to pysbd, tiktoken and the word-piece counter."""
    work = Work()
    segmenter = chunking._segmenter()
    encoding = chunking.get_encoding()

    class CountingSegmenter:
        def segment(self, text: str) -> Any:
            work.segmented.append(len(text))
            return segmenter.segment(text)

    class CountingEncoding:
        def encode(self, text: str, **kwargs: Any) -> list[int]:
            work.tokenized += len(text)
            return encoding.encode(text, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(encoding, name)

    pieces = HashEmbedder().count_word_pieces

    def count_word_pieces(text: str) -> int:
        work.word_pieces += len(text)
        return pieces(text)

    with monkeypatch.context() as patch:
        patch.setattr(chunking, "_segmenter", CountingSegmenter)
        patch.setattr(chunking, "get_encoding", CountingEncoding)
        yield work, count_word_pieces


def _chunk_counting(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Work, list[Chunk]]:
    with counting(monkeypatch) as (work, count_word_pieces):
        chunks = chunk_document("doc", text, None, count_word_pieces)
    return work, chunks


def _check_chunks(text: str, chunks: list[Chunk]) -> None:
    assert chunks
    covered = 0
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == count_tokens(chunk.text) <= 160
        assert chunk.start <= covered or not text[covered : chunk.start].strip()
        covered = max(covered, chunk.end)
    assert not text[covered:].strip()


@pytest.mark.parametrize("make_text", [unpunctuated, one_paragraph])
def test_chunking_work_grows_linearly(make_text: Callable[[int], str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [25_000, 50_000, 100_000]
    works = []
    for size in sizes:
        text = make_text(size)
        work, chunks = _chunk_counting(text, monkeypatch)
        _check_chunks(text, chunks)
        # pysbd is never handed more than a bounded piece, whatever the paragraph's length ...
        assert max(work.segmented, default=0) <= WHOLE_PARAGRAPH
        # ... and every step sees each character a bounded number of times (packing re-counts
        # a growing chunk once per sentence it takes, so short sentences cost more).
        assert work.total <= 40 * size, (size, work)
        works.append(work.total)
    # Linear: four times the text is about four times the work (it was 16 times for pysbd).
    assert 3.5 <= works[2] / works[0] <= 4.5, works


def test_a_long_paragraph_is_segmented_into_its_sentences() -> None:
    """Windows never cut an ordinary sentence: each comes out whole, as in a short paragraph."""
    text = one_paragraph(3 * WHOLE_PARAGRAPH)
    text = text[: text.rindex(".") + 1]
    expected = [s if s.endswith(".") else s + "." for s in text.split(". ")]
    found = [text[s.start : s.end] for s in chunking.split_sentences(text)]
    assert found == expected


def test_a_sentence_longer_than_a_window_stays_one_sentence() -> None:
    run_on = unpunctuated(5 * WHOLE_PARAGRAPH)
    text = f"A short opening sentence. {run_on}. A short closing sentence."
    found = [text[s.start : s.end] for s in chunking.split_sentences(text)]
    assert found == ["A short opening sentence.", f"{run_on}.", "A short closing sentence."]


def test_token_offsets_agree_with_tiktoken() -> None:
    encoding = chunking.get_encoding()
    rng = random.Random(0)
    alphabet = "ab c\u00e9\u4e2d\u6587 \U0001f600x.,\n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        tokens = encoding.encode(text, disallowed_special=())
        _, offsets = encoding.decode_with_offsets(tokens)
        assert chunking._token_offsets(encoding, tokens, text) == [*offsets, len(text)]
