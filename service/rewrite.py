"""Follow-up questions in a conversation, rewritten into standalone questions.

A chat user asks "How many volunteers are in the city?" and then "and how many of them are near
the river?". Retrieval and evidence selection only see one question, so the follow-up is
rewritten into "How many volunteers are near the river?" first.

``rewrite_followup`` is deterministic: it detects follow-ups (a leading "and"/"but"/"what
about", a pronoun with no antecedent in the question itself, or a very short question) and
carries over the topic of the previous user turn: the noun phrase a "them"/"it" stands for, or
the previous question with a new place or name swapped in ("what about Portugal?"). With an
LLM configured, ``service.generator.LLMRewriter`` may do this instead and falls back to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CONNECTOR = re.compile(
    r"^\s*(?:(?:and|but|also|so|then|ok(?:ay)?|well|or)\b[\s,]*)+", re.IGNORECASE)
_WHAT_ABOUT = re.compile(
    r"^\s*(?:(?:and|but|so)\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_BARE_ELLIPSIS = re.compile(  # "and in Portugal?", "and for 2022?"
    r"^\s*(?:and|but|or)\s+(?P<x>(?:in|for|near|on|at|from|about|with|of)\s+.+?|[A-Z][\w'-]*"
    r"(?:\s+[A-Z][\w'-]*)*)\s*[?.!]*\s*$")
_PLURAL_PRONOUNS = ("them", "they", "those", "these", "their", "theirs")
_SINGULAR_PRONOUNS = ("it", "its", "he", "she", "his", "her", "him")
_QUANTIFIED = re.compile(
    r"\b(how many|how much|most|many|some|all|few|none|any|each|which|what share|what "
    r"proportion|what percentage)\s+of\s+(them|those|these)\b", re.IGNORECASE)
_SUBJECT_AFTER_QUANTITY = re.compile(
    r"^\s*(?:how\s+many|how\s+much|what\s+(?:number|share|proportion|percentage)\s+of)\s+"
    r"(?P<np>.+?)\s+(?:are|were|is|was|do|does|did|have|has|had|will|would|can|could|"
    r"remain|live|operate|fight|moved?|crossed?|entered?)\b", re.IGNORECASE)
_SUBJECT_AFTER_AUX = re.compile(
    r"^\s*(?:why|when|where|how|what|which|who)\s+(?:did|does|do|is|are|was|were|has|have|"
    r"had|will|would|can|could)\s+(?P<np>(?:the\s+)?(?:[A-Z][\w'-]*|[A-Z]{2,})"
    r"(?:\s+(?:[A-Z][\w'-]*|[a-z]+s))*)\b")
_NAME = re.compile(r"\b(?:[A-Z][\w'-]*(?:\s+(?:of\s+)?[A-Z][\w'-]*)*|[A-Z]{2,})\b")
_QUESTION_WORDS = {"how", "what", "which", "who", "whom", "whose", "when", "where", "why",
                   "is", "are", "was", "were", "did", "does", "do", "and", "but", "so", "i"}
#: Questions this short (in words, connector removed) lean on the conversation.
SHORT_QUESTION_WORDS = 3


@dataclass(frozen=True)
class Rewrite:
    """The question as asked, the standalone question searched, and how it was obtained."""

    original: str
    standalone: str
    rewritten: bool
    method: str  # "none", "deterministic" or "llm:<model>"


def is_followup(question: str) -> bool:
    """Whether ``question`` leans on earlier turns (connector, loose pronoun, very short)."""
    text = question.strip()
    if not text:
        return False
    if _CONNECTOR.match(text) or _WHAT_ABOUT.match(text):
        return True
    words = re.findall(r"[\w'-]+", text)
    if len(words) <= SHORT_QUESTION_WORDS:
        return True
    return _loose_pronoun(text) is not None


def _names(text: str) -> list[str]:
    """Capitalised names and acronyms, leaving out a capitalised first word."""
    found = []
    for match in _NAME.finditer(text):
        value = match.group(0)
        if match.start() == len(text) - len(text.lstrip()) or value.lower() in _QUESTION_WORDS:
            # A sentence-initial capital is grammar; keep the rest of a multi-word name.
            head, _, rest = value.partition(" ")
            if not rest or head.lower() in _QUESTION_WORDS:
                value = rest
            if not value or value.lower() in _QUESTION_WORDS:
                continue
        found.append(value)
    return found


def _loose_pronoun(text: str) -> re.Match[str] | None:
    """The first pronoun with no name or noun before it in the same question."""
    pattern = re.compile(r"\b(" + "|".join(_PLURAL_PRONOUNS + _SINGULAR_PRONOUNS) + r")\b",
                         re.IGNORECASE)
    for match in pattern.finditer(text):
        word = match.group(1).lower()
        before = text[: match.start()]
        if word in ("those", "these") and re.match(r"\s+(?!of\b|are\b|were\b)[a-z]{3,}",
                                                   text[match.end():]):
            return match  # "these militants": a determiner pointing back all the same
        if not _names(before):
            return match
    return None


def topic_phrase(question: str) -> str | None:
    """What a follow-up's "them"/"it" most likely stands for in ``question``."""
    for pattern in (_SUBJECT_AFTER_QUANTITY, _SUBJECT_AFTER_AUX):
        match = pattern.match(question)
        if match:
            phrase = match.group("np").strip()
            phrase = re.sub(r"^(?:the|a|an)\s+", "", phrase, flags=re.IGNORECASE)
            if phrase:
                return phrase
    names = _names(question)
    return names[0] if names else None


def _swap_last_name(previous: str, replacement: str) -> str | None:
    """``previous`` with its last name or place replaced by ``replacement``."""
    last = None
    for match in _NAME.finditer(previous):
        if match.start() == 0:
            continue
        last = match
    if last is None:
        return None
    return previous[: last.start()] + replacement + previous[last.end():]


def _finish(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" ,")
    text = re.sub(r"\s+([?.!,])", r"\1", text)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in "?.!" else text + "?"


def _context_terms(previous: str, question: str) -> list[str]:
    """Names and the topic phrase of ``previous`` that ``question`` does not mention."""
    lower = question.lower()
    terms = []
    topic = topic_phrase(previous)
    if topic:
        terms.append(topic)
    terms.extend(_names(previous))
    out: list[str] = []
    for term in terms:
        if term.lower() not in lower and not any(term.lower() in t.lower() for t in out):
            out.append(term)
    return out


def rewrite_against(previous: str, question: str) -> str:
    """Rewrite one follow-up against the (already standalone) previous user question."""
    question = question.strip()
    about = _WHAT_ABOUT.match(question) or _BARE_ELLIPSIS.match(question)
    if about:
        subject = about.group("x").strip()
        if subject[:1].isupper() or subject.split(" ", 1)[0].lower() in ("in", "near", "for"):
            bare = re.sub(r"^(?:in|for|near|on|at|from|about|with|of)\s+", "", subject,
                          flags=re.IGNORECASE)
            swapped = _swap_last_name(previous, bare) if bare[:1].isupper() else None
            if swapped is not None:
                return _finish(swapped)
        if subject[:1].islower():
            return _finish(f"{previous.rstrip('?.! ')} {subject}")  # "… in Portugal in 2022?"
        return _finish(f"{previous.rstrip('?.! ')}, regarding {subject}")

    bare_word = re.fullmatch(r"\s*(?:and\s+)?(why|how|when|where|who|what)\s*[?.!]*\s*", question,
                             re.IGNORECASE)
    if bare_word:  # "why?" asks the previous question again, for a reason
        return _finish(f"{previous.rstrip('?.! ')} — {bare_word.group(1).lower()}")

    body = _CONNECTOR.sub("", question)
    topic = topic_phrase(previous)
    changed = False
    if topic:
        plural, singular = topic, topic
        body, n = _QUANTIFIED.subn(lambda m: f"{m.group(1)} {plural}", body)
        changed = changed or n > 0
        replacements = {"them": plural, "they": plural, "those": plural, "these": plural,
                        "their": f"{plural}'", "theirs": f"{plural}'",
                        "it": singular, "him": singular, "he": singular, "she": singular,
                        "its": f"{singular}'s", "his": f"{singular}'s", "her": f"{singular}'s"}
        loose = _loose_pronoun(body)
        while loose is not None:
            word = loose.group(1)
            after = body[loose.end():]
            if word.lower() in ("those", "these") and re.match(r"\s+[a-z]{3,}", after):
                break  # a determiner: keep its noun, add context below
            body = body[: loose.start()] + replacements[word.lower()] + after
            changed = True
            loose = _loose_pronoun(body)
    missing = _context_terms(previous, body)
    if not changed and missing:
        body = f"{body.rstrip('?.! ')} ({', '.join(missing)})"
    elif not changed:
        body = f"{previous.rstrip('?.! ')}: {body}"
    return _finish(body)


def rewrite_followup(history: Sequence[str], question: str) -> Rewrite:
    """Make ``question`` standalone given the earlier user turns (oldest first)."""
    question = question.strip()
    previous: str | None = None
    for turn in history:
        turn = turn.strip()
        if not turn:
            continue
        previous = rewrite_against(previous, turn) if previous and is_followup(turn) else turn
    if previous is None or not is_followup(question):
        return Rewrite(question, question, False, "none")
    standalone = rewrite_against(previous, question)
    return Rewrite(question, standalone, standalone != question, "deterministic")
