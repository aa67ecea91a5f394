"""Hard rules for generated sentences: facts that must be in the cited evidence, framing lines,
list markers, and passages that try to instruct the model.

A written sentence can read well against its quote and still invent the one fact that matters
(a figure, a date, who did it). These rules are applied on top of the support score to LLM
sentences (``service/generator.py``):

- every number, date and named actor (spaCy NER via ``corpus.text``) in the sentence must
  occur in its cited evidence, else the sentence is unsupported;
- passage text that reads as instructions to a model ("ignore previous instructions", "answer
  42") is never evidence;
- framing lines ("Here is a concise summary:") are recognised and not judged, and list markers
  ("1.") are not numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from corpus.text import fold, names_in, present
from corpus.text.analysis import analyse as parse
from corpus.text.numbers import find_numbers

_LIST_MARKER = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,2}[.)]|\(?[a-zA-Z][.)])\s+(?=\S)")
_MARKUP = re.compile(r"\*\*|__|^#+\s*")
_FRAMING_WHOLE = re.compile(
    r"^(?:here\s+(?:is|are)|below\s+(?:is|are)|sure|certainly|okay|ok)\b[^.!?]*[:.!]?$"
    r"|^[^.!?]{0,80}:$"
    r"|^(?:in\s+)?(?:summary|conclusion|short)\s*[:,]?$",
    re.IGNORECASE)
_FRAMING_PREFIX = re.compile(
    r"^(?:(?:the|these|this)\s+(?:passages?|articles?|sources?|texts?|documents?|reports?)\s+"
    r"(?:mentions?|says?|states?|notes?|reports?|explains?|indicates?|describes?|discuss(?:es)?|"
    r"suggests?|confirms?)(?:\s+that)?\s*[,:]?\s*"
    r"|according\s+to\s+(?:the\s+)?(?:passages?|articles?|sources?|texts?|documents?)"
    r"(?:\s*\[\d+\])*\s*,\s*"
    r"|(?:in\s+)?(?:summary|short|conclusion|brief)\s*,\s*)",
    re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,60}"
    r"\b(?:instructions?|prompts?|rules|guidelines|directions|context|passages?)\b"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b"
    r"|(?:^|[.!?:]\s+|\n)\s*(?:system|assistant|user)\s*:"
    r"|\b(?:you\s+are\s+now|new\s+instructions?|as\s+an\s+ai|language\s+model|the\s+assistant)\b"
    r"|\b(?:answer|reply|respond|say|output|print|write)\s+(?:only\s+)?(?:with\s+)?"
    r"(?:[\"'“]|\d|that\s+the\s+answer|the\s+(?:following|word))"
    r"|</?\s*passages?\b",
    re.IGNORECASE)
#: Entity labels of named actors, places and things a sentence may not invent.
ACTOR_LABELS = frozenset({"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "EVENT", "PRODUCT",
                          "WORK_OF_ART", "LAW"})
_MONTHS_DAYS = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday)\b", re.IGNORECASE)
#: Counts up to this, written as words ("two officials"), may be shown by listing, not stated.
SMALL_WORD_COUNT = 12


def strip_list_marker(text: str) -> str:
    """``text`` without a leading list marker ("1.", "-", "a)") or Markdown emphasis."""
    return _MARKUP.sub("", _LIST_MARKER.sub("", text, count=1)).strip()


def is_framing(sentence: str) -> bool:
    """Whether a sentence only frames the answer ("Here is a concise summary:")."""
    text = strip_list_marker(sentence).strip()
    if not text:
        return True
    if _FRAMING_WHOLE.match(text):
        return not find_numbers(text) or text.endswith(":")
    stripped = _FRAMING_PREFIX.sub("", text, count=1)
    return stripped != text and len(re.findall(r"\w+", stripped)) < 3


def claim_text(sentence: str) -> str:
    """What a sentence claims: list markers and framing prefixes ("The passage mentions
    that …") removed."""
    text = strip_list_marker(sentence)
    stripped = _FRAMING_PREFIX.sub("", text, count=1)
    if stripped != text and len(re.findall(r"\w+", stripped)) >= 3:
        text = stripped[0].upper() + stripped[1:]
    return text


def is_instruction(text: str) -> bool:
    """Whether passage text reads as instructions to a model rather than reporting."""
    return bool(_INSTRUCTION.search(text))


def _number_present(value: float, kind: str, evidence: Sequence[float]) -> bool:
    if kind == "year":
        return any(abs(value - other) < 0.5 for other in evidence)
    return any(other == value or (other and abs(value - other) / abs(other) <= 0.01)
               for other in evidence)


def missing_facts(claim: str, evidence: Sequence[str]) -> list[str]:
    """The claim's numbers, dates and named actors that its evidence does not state."""
    text = claim_text(claim)
    joined = " ".join(evidence)
    missing: list[str] = []
    values = [m.value for m in find_numbers(joined)]
    for mention in find_numbers(text):
        worded = not re.search(r"\d", mention.text)
        if worded and mention.value <= SMALL_WORD_COUNT:
            continue  # "two officials": a count the evidence may show by naming them
        if not _number_present(mention.value, mention.kind, values):
            missing.append(f"number {mention.text.strip()}")
    folded = fold(joined)
    doc = parse(text)
    for ent in doc.ents:
        if ent.label_ in ("DATE", "TIME"):
            for word in _MONTHS_DAYS.findall(ent.text):
                if not present(word, folded):
                    missing.append(f"date {ent.text}")
                    break
    for name in names_in(text):
        if _MONTHS_DAYS.fullmatch(name.strip()):
            continue  # a date, judged above
        if not present(name, folded):
            missing.append(f"name {name}")
    return list(dict.fromkeys(missing))
