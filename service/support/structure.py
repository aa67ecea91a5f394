"""Structural evidence checks the cross-encoder is weak at, as features for the calibrated model.

A reading model sees that every word of a claim occurs somewhere in the evidence; these
features ask whether the claim's anchors (numbers and capitalised names) stand *together* in one
evidence sentence, whether the words around a number match, whether a hedge ("reportedly",
"may") was dropped, and whether negation agrees; ``lexical`` is the lexical support model's
score. Cheap (regex analysis, no parser), so they run on every pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from corpus.text.numbers import find_numbers
from service.support.analysis import AnalysedText, analyse, numbers_agree
from service.support.cross_encoder import split_sentences

#: Words that weaken a statement; evidence that hedges and a claim that does not disagree.
HEDGES = frozenset(
    "reportedly allegedly possibly probably apparently purportedly likely may might could "
    "suspected presumably supposedly unconfirmed believed".split())
#: Content words on each side of a number that describe what is counted.
NUMBER_CONTEXT = 3

STRUCTURAL_FEATURES = ("anchor_missing", "anchor_together", "number_context", "hedge_dropped",
                       "negation_flip", "lexical")
_WORDS = re.compile(r"[A-Za-z']+")
_NEGATION = re.compile(r"\b(?:not|no|never|none|without|n't|cannot|neither|nor)\b|n't\b",
                       re.IGNORECASE)


def _numbers(text: AnalysedText) -> set[float]:
    """The text's numbers, worded large ones included ("one million")."""
    worded = {m.value for m in find_numbers(text.raw) if m.value >= 100}
    return set(text.numbers) | worded


def _anchors(text: AnalysedText) -> tuple[set[str], set[float]]:
    return set(text.entities), _numbers(text)


def _has(sentence: AnalysedText, names: set[str], numbers: set[float]) -> tuple[int, int]:
    got_names = len(names & sentence.stem_set)
    got_numbers = sum(numbers_agree(v, _numbers(sentence)) for v in numbers)
    return got_names, got_numbers


def _number_context(claim: AnalysedText, sentences: Sequence[AnalysedText]) -> float:
    """Share of the claim's numbers whose neighbouring content words stand near them in a
    sentence that states the same number (1.0 when the claim has no number)."""
    if not claim.numbers:
        return 1.0
    claim_words = claim.raw.lower()
    hits = 0
    for value, surface in claim.numbers.items():
        at = claim_words.find(surface.lower())
        around = set()
        if at >= 0:
            left = _WORDS.findall(claim_words[:at])[-NUMBER_CONTEXT:]
            right = _WORDS.findall(claim_words[at + len(surface):])[:NUMBER_CONTEXT]
            around = {analyse(w).stems[0] for w in left + right if analyse(w).stems}
        for sentence in sentences:
            if not numbers_agree(value, set(sentence.numbers)):
                continue
            if not around or around & sentence.stem_set:
                hits += 1
                break
    return hits / len(claim.numbers)


def structural_features(claim: str, quotes: Sequence[str]) -> dict[str, float]:
    """The structural feature values for a claim against its evidence."""
    claim_t = analyse(claim)
    sentences = [analyse(s) for q in quotes for s in split_sentences(q)] or [analyse("")]
    names, numbers = _anchors(claim_t)
    total = len(names) + len(numbers)
    union_stems = set().union(*(s.stem_set for s in sentences))
    union_numbers = {v for s in sentences for v in _numbers(s)}
    if total:
        missing = len(names - union_stems) + sum(
            not numbers_agree(v, union_numbers) for v in numbers)
        together = max(sum(_has(s, names, numbers)) for s in sentences) / total
    else:
        missing, together = 0, 1.0
    best = max(sentences, key=lambda s: len(claim_t.stem_set & s.stem_set))
    evidence_hedges = {w.lower() for w in _WORDS.findall(best.raw)} & HEDGES
    claim_hedges = {w.lower() for w in _WORDS.findall(claim)} & HEDGES
    claim_negated = bool(_NEGATION.search(claim))
    evidence_negated = bool(_NEGATION.search(best.raw))
    return {
        "lexical": _lexical_score(claim, quotes),
        "anchor_missing": missing / total if total else 0.0,
        "anchor_together": together,
        "number_context": _number_context(claim_t, sentences),
        "hedge_dropped": float(bool(evidence_hedges) and not claim_hedges),
        "negation_flip": float(claim_negated != evidence_negated),
    }


def _lexical_score(claim: str, quotes: Sequence[str]) -> float:
    """The lexical support model's probability (word, name and number coverage; fitted on
    WiCE dev, ``support_weights.json``): what the reading model adds to is what words show."""
    global _LEXICAL_CHECKER
    if _LEXICAL_CHECKER is None:
        from service.support.checker import SupportChecker

        _LEXICAL_CHECKER = SupportChecker()  # lexical: no embedder, no trained model
    return float(_LEXICAL_CHECKER.check(claim, list(quotes)).score)


_LEXICAL_CHECKER: Any = None
