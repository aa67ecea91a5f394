"""Names: found with spaCy, compared accent- and case-folded ("Céloron" matches "Celeron"
only where the letters agree once accents are removed: "Möngke" = "Mongke")."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from corpus.text.analysis import analyse

# Entity labels that name something a passage must mention to be about it.
_NAME_LABELS = {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "WORK_OF_ART",
                "PRODUCT", "LAW", "LANGUAGE"}
_NON_WORD = re.compile(r"[^\w]+")


# Whole documents are folded too (name coverage), so the cache stays small.
@lru_cache(maxsize=1024)
def fold(text: str) -> str:
    """Lower-case, strip accents and collapse punctuation to single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " " + _NON_WORD.sub(" ", stripped.casefold()).strip() + " "


def names_in(text: str) -> tuple[str, ...]:
    """The names a (short) text mentions: named entities and proper-noun runs, in order."""
    doc = analyse(text)
    found: list[str] = []
    covered: set[int] = set()
    for ent in doc.ents:
        if ent.label_ in _NAME_LABELS:
            words = [t for t in ent if not t.is_stop and not t.is_punct]
            if words:
                found.append(" ".join(t.text for t in words))
                covered.update(t.i for t in ent)
    run: list[str] = []
    for token in list(doc) + [None]:
        if token is not None and token.pos_ == "PROPN" and token.i not in covered \
                and token.i > 0:
            run.append(token.text)
            continue
        if run:
            found.append(" ".join(run))
            run = []
    return tuple(dict.fromkeys(n for n in found if fold(n).strip()))


def present(name: str, folded_text: str) -> bool:
    """Whether every word of ``name`` occurs in ``folded_text`` (a ``fold()`` result)."""
    words = fold(name).split()
    return bool(words) and all(f" {w} " in folded_text or
                               (len(w) > 4 and f" {w[:-1]}" in folded_text) for w in words)
