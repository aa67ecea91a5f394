"""What a question asks for (the ``answer_type`` reported with every answer)."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache


class AnswerType(StrEnum):
    """The kind of fact a question asks for."""

    NUMBER = "number"
    PERSON = "person"
    DATE = "date"
    PLACE = "place"
    REASON = "reason"
    ORGANIZATION = "organization"
    OTHER = "other"


# English wh-phrases; the earliest one in the question decides ("Why were the fighters who
# came back…" asks for a reason). Informational only: the reader decides what the answer is.
_TYPE_PATTERNS: list[tuple[AnswerType, re.Pattern[str]]] = [
    (AnswerType.NUMBER, re.compile(
        r"\b(how\s+(many|much|large|big|long|far|old|tall|high)|what\s+(number|percentage|"
        r"share|proportion|amount|size|sum|quantity)|number\s+of)\b", re.I)),
    (AnswerType.DATE, re.compile(
        r"\b(when|what\s+(year|date|month|day|time|century|decade)|which\s+(year|date|month|"
        r"day|century|decade)|since\s+when)\b", re.I)),
    (AnswerType.PERSON, re.compile(r"\b(who|whom|whose)\b", re.I)),
    (AnswerType.PLACE, re.compile(
        r"\b(where|(which|what)\s+(country|countries|province|city|cities|region|state|area|"
        r"capital|town|place|continent))\b", re.I)),
    (AnswerType.REASON, re.compile(r"\b(why|what\s+(reason|caused|prompted|led)|for\s+what\s+"
                                   r"reason|how\s+come)\b", re.I)),
    (AnswerType.ORGANIZATION, re.compile(
        r"\b(which|what)\s+(organi[sz]ation|group|company|agency|institution|party|team|"
        r"newspaper|university)\b", re.I)),
]


@lru_cache(maxsize=4096)
def answer_type_of(question: str) -> str:
    """The answer type of ``question`` (``other`` when no wh-phrase says)."""
    answer_type, earliest = AnswerType.OTHER, len(question) + 1
    for candidate, pattern in _TYPE_PATTERNS:
        match = pattern.search(question)
        if match is not None and match.start() < earliest:
            answer_type, earliest = candidate, match.start()
    return answer_type.value
