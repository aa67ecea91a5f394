"""Numbers written in prose, with their values: "£5.2bn", "one million", "sixty", "1263",
"the 1990s", "6.5 thousand", "12-1", "40%"."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "a": 1, "an": 1, "dozen": 12,
}
_SCALES = {"hundred": 1e2, "thousand": 1e3, "k": 1e3, "million": 1e6, "mln": 1e6, "mn": 1e6,
           "m": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12}
_CURRENCY = {"$": "USD", "us$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY"}

_SCALE_WORDS = "hundred|thousand|million|mln|mn|billion|bn|trillion|tn|k|m|b"
_WORD = "|".join(sorted((w for w in _UNITS if len(w) > 2), key=len, reverse=True))
_PATTERN = re.compile(
    rf"(?P<decade>\b(?:the\s+)?(?:(?P<dcent>1\d|20)(?P<dyear>\d0)|'(?P<dshort>\d0))s\b)"
    rf"|(?P<score>\b\d{{1,3}}\s?[-–]\s?\d{{1,3}}\b(?!\s?[-–/]?\s?\d))"
    rf"|(?P<cur>US\$|\$|£|€|¥)?\s?"
    rf"(?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    rf"(?:\s?(?P<scale>{_SCALE_WORDS})\b)?(?P<pct>\s?(?:%|per\s?cent\b|percent\b))?"
    rf"|(?P<words>\b(?:(?:{_WORD})(?:[\s-](?:and\s)?(?:{_WORD}|{_SCALE_WORDS}))*"
    rf"(?:\s(?:{_SCALE_WORDS}))?)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NumberMention:
    """A number in a text: ``text[start:end]`` and its value (a decade's first year; a score's
    first side), with what kind of number it is."""

    start: int
    end: int
    text: str
    value: float
    kind: str  # number | percent | money | year | decade | score
    currency: str | None = None


def _word_value(words: str) -> float | None:
    total, current = 0.0, 0.0
    seen = False
    for word in re.split(r"[\s-]+", words.lower()):
        if word == "and":
            continue
        if word in _UNITS:
            current += _UNITS[word]
            seen = True
        elif word in _SCALES and word not in {"k", "m", "b"}:
            current = max(current, 1.0) * _SCALES[word]
            if _SCALES[word] >= 1e3:
                total, current = total + current, 0.0
            seen = True
        else:
            return None
    return total + current if seen else None


def find_numbers(text: str) -> list[NumberMention]:
    """Every number mention in ``text``, in order."""
    out: list[NumberMention] = []
    for match in _PATTERN.finditer(text):
        if match.group("decade"):
            if match.group("dshort"):
                value = 1900.0 + int(match.group("dshort"))
            else:
                value = float(int(match.group("dcent")) * 100 + int(match.group("dyear")))
            out.append(NumberMention(match.start(), match.end(), match.group(), value, "decade"))
        elif match.group("score"):
            first = re.match(r"\d+", match.group("score"))
            assert first is not None
            out.append(NumberMention(match.start(), match.end(), match.group(),
                                     float(first.group()), "score"))
        elif match.group("num"):
            value = float(match.group("num").replace(",", ""))
            scale = (match.group("scale") or "").lower()
            if scale:
                value *= _SCALES[scale]
            cur = match.group("cur")
            kind = "money" if cur else "percent" if match.group("pct") else "number"
            if kind == "number" and not scale and 1000 <= value <= 2100 and \
                    "," not in match.group("num") and "." not in match.group("num"):
                kind = "year"
            start = match.start("cur") if cur else match.start("num")
            out.append(NumberMention(start, match.end(), text[start:match.end()], value, kind,
                                     _CURRENCY.get((cur or "").lower())))
        elif match.group("words"):
            worded = _word_value(match.group("words"))
            if worded is not None and match.group("words").lower() not in {"a", "an"}:
                out.append(NumberMention(match.start(), match.end(), match.group(), worded,
                                         "number"))
    return out


def same_quantity(a: str, b: str) -> bool | None:
    """Whether two short texts state a common number (None when either states none)."""
    first, second = find_numbers(a), find_numbers(b)
    if not first or not second:
        return None
    return bool({round(m.value, 6) for m in first} & {round(m.value, 6) for m in second})
