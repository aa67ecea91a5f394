"""Article text cleaning: widget and comment debris, captions, bylines, repeated headlines,
hard-wrapped lines. The cleaned text is what every offset in groundqa refers to."""

from __future__ import annotations

import re
import unicodedata

_TERMINAL = tuple(".!?…:;\"”’)]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_BOILERPLATE_LINE = re.compile(
    r"""^(
        (support|subscribe\s+to|follow)\s+\S+(\s+\S+)?      # "Support The Daily Example"
      | subscribe | notify\s+of | guest | oldest | newest(\s+most\s+voted)?
      | inline\s+feedbacks | view\s+all\s+comments | \d+\s+comments?
      | would\s+love\s+your\s+thoughts.* | login | log\s+in | sign\s+up | share(\s+this)?
      | click\s+to\s+(see|enlarge|view).* | more\s+on\s+the\s+topic:? | read\s+more:?
      | related(\s+articles?)?:? | advertisement | tags?:.* | source:\s*\S{1,40}
      | (photo|image|picture|credit|photograph)s?(\s+credit)?\s*:.*
      | by\s+.{1,60}\b(19|20)\d\d                          # byline with a date
      | [\W\d_]*                                            # numbers, symbols, "0 $", "()"
      | x | .{0,3}
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# Photo captions end with a credit: "... / OpenStreetMap Foundation, cc-by-sa 2.0"
_CAPTION_CREDIT = re.compile(
    r"(/|©|\|)\s*[^/]{0,80}(cc[- ]by|creative commons|getty|reuters|afp|ap photo|"
    r"shutterstock|wikimedia|openstreetmap|photo|courtesy)[^/]{0,40}$",
    re.IGNORECASE,
)
_DATE_WIDGET = re.compile(
    r"^(january|february|march|april|may|june|july|august|september|october|november|"
    r"december)\s+\d{4}\b(?![^\W\d_]*[a-z]{4,}.*\.$)",
    re.IGNORECASE,
)


def _is_prose(line: str) -> bool:
    words = line.split()
    return len(words) >= 12 or (len(words) >= 6 and line.rstrip().endswith(_TERMINAL))


def _is_boilerplate(line: str) -> bool:
    stripped = line.strip()
    if _BOILERPLATE_LINE.match(stripped):
        return True
    if _CAPTION_CREDIT.search(stripped):
        return True
    # A date widget such as "AUGUST 2025 <days left in another script>" that is not a sentence.
    return bool(_DATE_WIDGET.match(stripped)) and len(stripped.split()) <= 6


def _normalise_line(line: str) -> str:
    line = unicodedata.normalize("NFC", line)
    line = _ZERO_WIDTH.sub("", line)
    line = "".join(ch for ch in line if ch in "\t" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", line).strip()


def _strip_markdown(line: str) -> str:
    line = re.sub(r"^\s{0,3}#{1,6}\s+", "", line)
    line = re.sub(r"^\s{0,3}>\s?", "", line)
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", "", line)
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)
    line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)
    line = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", line)
    line = re.sub(r"`([^`]+)`", r"\1", line)
    return line


def clean_text(raw: str, *, markdown: bool = False) -> tuple[str, str | None]:
    """Clean article text; return (cleaned text, headline if one was found).

    Removes widget and comment debris, captions and bylines, a repeated headline, and joins
    hard-wrapped lines back into paragraphs. Paragraphs are separated by a blank line.
    """
    lines = [_normalise_line(_strip_markdown(x) if markdown else x) for x in raw.splitlines()]
    if markdown:
        lines = [x for x in lines if not re.fullmatch(r"[-*_=]{3,}", x)]

    first_line = next((i for i, x in enumerate(lines) if x), None)
    # A first line that is not a finished sentence is the headline, however long.
    if first_line is not None and (
        lines[first_line].endswith(_TERMINAL[:4]) or len(lines[first_line].split()) > 30
    ):
        first_line = None
    first_prose = next(
        (i for i, x in enumerate(lines) if _is_prose(x) and i != first_line), None
    )
    last_prose = next((i for i in range(len(lines) - 1, -1, -1) if _is_prose(lines[i])), None)

    headline: str | None = None
    kept: list[str | None] = []  # None marks a paragraph break
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if not line:
            kept.append(None)
            continue
        key = line.casefold()
        if key in seen and len(line.split()) <= 25:
            continue  # a duplicated headline or repeated widget line
        in_head = first_prose is not None and i < first_prose
        in_tail = last_prose is not None and i > last_prose
        if _is_boilerplate(line):
            continue
        if i == first_line:
            headline = line
            seen.add(key)
            kept.extend([line, None])
            continue
        if in_head:
            # Before the story starts, short fragments are widgets; a longer line is the
            # headline (when none was found yet) or the start of a hard-wrapped paragraph.
            words = line.split()
            if len(words) < 6:
                continue
            if headline is None and len(words) <= 30 and not line.endswith(_TERMINAL[:4]):
                headline = line
                seen.add(key)
                kept.extend([line, None])
                continue
        continues_sentence = (
            line[:1].islower() and bool(kept) and kept[-1] is not None
            and not kept[-1].endswith(_TERMINAL)
        )
        if in_tail and not _is_prose(line) and not continues_sentence:
            continue
        seen.add(key)
        kept.append(line)

    paragraphs: list[str] = []
    current: list[str] = []
    for entry in kept:
        if entry is None:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if current and not _continues(current[-1], entry, is_headline=(current[-1] == headline)):
            paragraphs.append(" ".join(current))
            current = []
        current.append(entry)
    if current:
        paragraphs.append(" ".join(current))
    if headline is None and paragraphs and not _is_prose(paragraphs[0]):
        headline = paragraphs[0]
    return "\n\n".join(paragraphs), headline


def _continues(previous: str, line: str, *, is_headline: bool) -> bool:
    """Whether ``line`` continues the hard-wrapped paragraph that ``previous`` ends."""
    if is_headline:
        return False
    if line[:1].islower():
        return True
    # A long line without closing punctuation was wrapped mid-sentence; short ones are headings.
    return len(previous) >= 40 and not previous.endswith(_TERMINAL)
