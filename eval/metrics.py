"""Pure scoring functions for the grounding evaluation.

Every function here is deterministic and side-effect free. A metric with nothing to score
returns ``nan`` (and reports print it as "n/a") rather than pretending to be 0 or 1.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

NAN = float("nan")

# --------------------------------------------------------------------------------------------
# Answer normalisation
# --------------------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")

_SCALES = {
    "k": 10**3, "thousand": 10**3, "million": 10**6, "mn": 10**6, "mln": 10**6,
    "billion": 10**9, "bn": 10**9,
}  # fmt: skip
# A number ("6,500", "6500", "6.5"), an optional scale word ("thousand", "k"), an optional
# currency ("$" before, "dollars"/"usd" after). Thousands separators must be well formed so
# that lists like "2021,2022" are not read as one number.
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<cur>(?:us)?\$)?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<scale>k|thousand|million|mln|mn|billion|bn)\b)?"
    r"(?:\s(?P<unit>dollars?|usd|us dollars)\b)?"
)
_ARTICLES = {"a", "an", "the"}
# Anything that is not a word character, whitespace or a decimal point between digits.
_PUNCT_RE = re.compile(r"(?:(?!(?<=\d)\.(?=\d))[^\w\s])|_")
_CITATION_MARKER_RE = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def _canonical_number(match: re.Match[str]) -> str:
    """Rewrite one matched number as a plain decimal string, keeping a currency tag."""
    try:
        value = Decimal(match.group("num").replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only admits valid numbers
        return match.group(0)
    scale = match.group("scale")
    if scale:
        value *= _SCALES[scale]
    if value == value.to_integral_value():
        text = str(int(value))
    else:
        text = format(value.normalize(), "f")
    if match.group("cur") or match.group("unit"):
        text += " dollars"
    return f" {text} "


def normalise_numbers(text: str) -> str:
    """Rewrite numbers in lower-cased text canonically: "6.5 thousand", "6,500", "6.5k" → "6500".

    Number words up to ninety become digits ("five" → "5") and money is tagged uniformly
    ("$100 million" and "100 million dollars" → "100000000 dollars").
    """
    text = _NUMBER_WORD_RE.sub(lambda m: str(_NUMBER_WORDS[m.group(1)]), text)
    return _NUMBER_RE.sub(_canonical_number, text)


def normalise_answer(text: str) -> str:
    """Normalise text for comparison: case, unicode, numbers, punctuation, articles, whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("per cent", "percent").replace("%", " percent ")
    text = normalise_numbers(text)
    text = _PUNCT_RE.sub(" ", text)
    tokens = [tok for tok in text.split() if tok not in _ARTICLES]
    return " ".join(tokens)


def strip_citation_markers(text: str) -> str:
    """Remove citation markers such as " [1]", "[1][2]" or "[1, 3]" and trim the result."""
    return _CITATION_MARKER_RE.sub("", text).strip()


def citation_markers(text: str) -> list[int]:
    """Return every citation number referenced by markers in ``text``, in order of appearance."""
    numbers: list[int] = []
    for marker in _CITATION_MARKER_RE.findall(text):
        numbers.extend(int(n) for n in re.findall(r"\d+", marker))
    return numbers


def answer_contains(answer: str, golds: Iterable[str]) -> bool:
    """True if any gold string, normalised, occurs in the normalised answer on token boundaries.

    Token boundaries keep "200" from matching inside "2000".
    """
    haystack = f" {normalise_answer(answer)} "
    for gold in golds:
        needle = normalise_answer(gold)
        if needle and f" {needle} " in haystack:
            return True
    return False


def _f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    """SQuAD-style token F1 of ``prediction`` against the best-matching gold; NaN with no golds."""
    gold_list = [golds] if isinstance(golds, str) else list(golds)
    if not gold_list:
        return NAN
    prediction_tokens = normalise_answer(prediction).split()
    return max(_f1(prediction_tokens, normalise_answer(g).split()) for g in gold_list)


# --------------------------------------------------------------------------------------------
# Aggregation helpers
# --------------------------------------------------------------------------------------------


def mean_or_nan(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN if there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else NAN


def format_metric(value: float, digits: int = 3) -> str:
    """Render a metric for people: NaN is "n/a"."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------
# Abstention
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbstentionScores:
    """How well a system abstains; positives are questions the articles cannot answer."""

    precision: float
    recall: float
    answer_recall: float
    balanced_accuracy: float


def abstention_scores(
    should_abstain: Sequence[bool], abstained: Sequence[bool]
) -> AbstentionScores:
    """Precision/recall of abstaining and balanced accuracy over the two question classes.

    precision = correct abstentions / abstentions (NaN if the system never abstained);
    recall = correct abstentions / unanswerable questions (NaN if there are none);
    answer_recall = answered / answerable questions (NaN if there are none);
    balanced_accuracy = mean(recall, answer_recall), NaN unless both classes are present.
    """
    if len(should_abstain) != len(abstained):
        raise ValueError("should_abstain and abstained must have the same length")
    pairs = list(zip(should_abstain, abstained, strict=True))
    true_pos = sum(1 for gold, pred in pairs if gold and pred)
    predicted_pos = sum(1 for _, pred in pairs if pred)
    gold_pos = sum(1 for gold, _ in pairs if gold)
    gold_neg = len(pairs) - gold_pos
    answered_correctly = sum(1 for gold, pred in pairs if not gold and not pred)

    precision = true_pos / predicted_pos if predicted_pos else NAN
    recall = true_pos / gold_pos if gold_pos else NAN
    answer_recall = answered_correctly / gold_neg if gold_neg else NAN
    balanced = (
        (recall + answer_recall) / 2
        if not (math.isnan(recall) or math.isnan(answer_recall))
        else NAN
    )
    return AbstentionScores(precision, recall, answer_recall, balanced)


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def hit_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """1.0 if any gold id is among the first ``k`` ranked ids, else 0.0; NaN with no gold ids."""
    gold = set(gold_ids)
    if not gold:
        return NAN
    return float(any(doc_id in gold for doc_id in ranked_ids[:k]))


def reciprocal_rank(ranked_ids: Sequence[str], gold_ids: Iterable[str]) -> float:
    """1/rank of the first gold id in ``ranked_ids`` (0.0 if absent); NaN with no gold ids.

    Ranks count list positions, so several passages from one document each take a rank.
    """
    gold = set(gold_ids)
    if not gold:
        return NAN
    for rank, doc_id in enumerate(ranked_ids, start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0


def _unique(ranked_ids: Sequence[str]) -> list[str]:
    """Drop repeated ids, keeping the first (BEIR rankings are sets with scores)."""
    return list(dict.fromkeys(ranked_ids))


def ndcg_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int | float], k: int) -> float:
    """nDCG@k with linear gain and log2 discount (BEIR / trec_eval); NaN if nothing is relevant.

    DCG = Σ_{i<k} rel(d_i) / log2(i + 2); IDCG is the DCG of the true relevances sorted
    descending. Relevance ≤ 0 counts as not relevant. Repeated ids count once.
    """
    ideal = sorted((r for r in qrels.values() if r > 0), reverse=True)[:k]
    if not ideal:
        return NAN
    ranked = _unique(ranked_ids)[:k]
    dcg = sum(max(qrels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked))
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg


def recall_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int | float], k: int) -> float:
    """Share of relevant ids (relevance > 0) in the first ``k``; NaN if nothing is relevant."""
    relevant = {d for d, r in qrels.items() if r > 0}
    if not relevant:
        return NAN
    return len(relevant.intersection(_unique(ranked_ids)[:k])) / len(relevant)


def mrr_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int | float], k: int) -> float:
    """1/rank of the first relevant id in the first ``k`` (0.0 if none); NaN if none relevant."""
    relevant = {d for d, r in qrels.items() if r > 0}
    if not relevant:
        return NAN
    for rank, doc_id in enumerate(_unique(ranked_ids)[:k], start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


# --------------------------------------------------------------------------------------------
# Citations and grounding (ALCE)
# --------------------------------------------------------------------------------------------

SupportFn = Callable[[str, list[str]], bool]


@dataclass(frozen=True)
class CitedSentence:
    """One answer sentence (citation markers removed) and the quote of each citation it carries."""

    claim: str
    quotes: Sequence[str]


@dataclass(frozen=True)
class CitationScores:
    """ALCE citation recall/precision with the per-sentence and per-citation judgements."""

    recall: float
    precision: float
    sentence_supported: list[bool] = field(default_factory=list)
    citation_precise: list[list[bool]] = field(default_factory=list)


def citation_scores(sentences: Sequence[CitedSentence], supports: SupportFn) -> CitationScores:
    """ALCE citation recall and precision (Gao et al. 2023, reference implementation).

    Recall: a sentence counts if it has citations and their quotes jointly support it.
    Precision: a citation is precise if its sentence is jointly supported and NOT (the citation
    alone does not support the sentence AND the other citations of that sentence still do).
    Citations of an unsupported sentence are imprecise, as in ALCE's ``compute_autoais``.
    Recall is NaN with no sentences; precision is NaN with no citations.
    """
    supported: list[bool] = []
    precise: list[list[bool]] = []
    for sentence in sentences:
        quotes = list(sentence.quotes)
        joint = bool(quotes) and supports(sentence.claim, quotes)
        supported.append(joint)
        flags: list[bool] = []
        for i, quote in enumerate(quotes):
            if not joint:
                flags.append(False)
            elif len(quotes) == 1 or supports(sentence.claim, [quote]):
                flags.append(True)
            else:
                rest = quotes[:i] + quotes[i + 1 :]
                flags.append(not supports(sentence.claim, rest))
        precise.append(flags)
    n_citations = sum(len(f) for f in precise)
    recall = sum(supported) / len(supported) if supported else NAN
    precision = sum(sum(f) for f in precise) / n_citations if n_citations else NAN
    return CitationScores(recall, precision, supported, precise)


def groundedness(sentence_supported: Sequence[bool]) -> float:
    """Share of answer sentences supported by the evidence; NaN with no sentences."""
    return sum(sentence_supported) / len(sentence_supported) if sentence_supported else NAN


@dataclass(frozen=True)
class CitationValidity:
    """Mechanical citation checks for one answer: markers resolve, quotes match their spans."""

    checks: int
    problems: list[str]

    @property
    def passed(self) -> int:
        """Number of checks that passed."""
        return self.checks - len(self.problems)

    @property
    def score(self) -> float:
        """Share of checks passed; NaN when there was nothing to check."""
        return self.passed / self.checks if self.checks else NAN


def citation_validity(
    answer: str,
    citations: Sequence[Mapping[str, Any]],
    document_text: Callable[[str], str],
    sentences: Sequence[Mapping[str, Any]] = (),
) -> CitationValidity:
    """Check that every [n] marker and sentence citation resolves to a citation id, and that
    every citation's quote equals ``document_text(doc_id)[start:end]`` exactly (no normalising).
    """
    problems: list[str] = []
    checks = 0
    ids = {c.get("id") for c in citations}
    for number in citation_markers(answer):
        checks += 1
        if number not in ids:
            problems.append(f"marker [{number}] has no citation with id {number}")
    for index, sentence in enumerate(sentences, start=1):
        for cited in sentence.get("citations") or []:
            checks += 1
            if cited.get("id") not in ids:
                problems.append(f"sentence {index} cites unknown citation id {cited.get('id')}")
    for citation in citations:
        checks += 1
        label = f"citation [{citation.get('id')}]"
        span = citation.get("source_span") or {}
        start, end = span.get("start"), span.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            problems.append(f"{label} has no integer source_span")
            continue
        try:
            text = document_text(str(citation.get("doc_id")))
        except Exception as exc:  # any lookup failure makes the citation invalid
            problems.append(f"{label}: document {citation.get('doc_id')!r} unavailable ({exc})")
            continue
        if not 0 <= start <= end <= len(text):
            problems.append(f"{label} span {start}:{end} outside document of {len(text)} chars")
        elif text[start:end] != citation.get("quote"):
            problems.append(
                f"{label} quote != document_text[{start}:{end}] "
                f"(span holds {text[start:end][:60]!r})"
            )
    return CitationValidity(checks, problems)


# --------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------


def latency_percentiles(latencies_ms: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) with numpy's linear interpolation; (NaN, NaN) with no measurements."""
    if len(latencies_ms) == 0:
        return NAN, NAN
    p50, p95 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 95], method="linear")
    return float(p50), float(p95)
