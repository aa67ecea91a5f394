"""Answer or abstain: the reader's best span, described by a few features, and a calibrated
probability that it is right.

The weights and the threshold come from ``groundqa train decide`` (eval/decide_fit.py) run on
public development data; they live in ``models/decide.json`` with the data they were fitted on
written beside them. Nothing here is set by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from corpus.text import content_terms, fold, names_in, present
from corpus.text.numbers import same_quantity
from index.retrieve import Passage
from service.answer.reader import Reading, Span

#: The features the decision model reads, in order (see ``describe``).
FEATURES = (
    "margin",          # best span score minus its passage's no-answer score
    "span_score",      # start + end logits of the best span
    "null_score",      # no-answer logit of the best span's passage
    "best_null_margin",  # best span score minus the lowest no-answer score of any passage
    "retrieval",       # fused retrieval score of the best span's passage
    "dense",           # cosine of the question and that passage
    "rank",            # 1 / retrieval rank of that passage
    "name_coverage",   # share of the question's names its document (text, title, outlet) has
    "term_coverage",   # share of the question's content terms that the passage mentions
    "agreement",       # share of read passages whose best span says the same
)


class AbstainReason(StrEnum):
    """Why the service declined to answer."""

    NO_RELEVANT_PASSAGES = "no_relevant_passages"
    INSUFFICIENT_SUPPORT = "insufficient_support"
    MISSING_KEY_TERMS = "missing_key_terms"
    ANSWER_TYPE_NOT_FOUND = "answer_type_not_found"


@dataclass(frozen=True)
class Candidate:
    """A span the reader proposed in one retrieved passage."""

    passage: Passage
    span: Span
    null_score: float

    @property
    def margin(self) -> float:
        """How far the span beats its passage's "no answer" option."""
        return self.span.score - self.null_score


@dataclass
class Decision:
    """The outcome for one question: the chosen candidate (also when abstaining) and why."""

    answerable: bool
    confidence: float
    best: Candidate | None
    candidates: list[Candidate] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    reason: AbstainReason | None = None
    missing_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecisionModel:
    """Logistic regression over ``FEATURES`` (standardised) and the abstention threshold."""

    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def confidence(self, values: dict[str, float]) -> float:
        """Probability that the best span is a right answer."""
        z = self.bias
        for name, w, mean, scale in zip(FEATURES, self.weights, self.means, self.scales,
                                        strict=True):
            z += w * (values[name] - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, Any]:
        """The file form (``models/decide.json``)."""
        return {"features": list(FEATURES), "weights": list(self.weights), "bias": self.bias,
                "means": list(self.means), "scales": list(self.scales),
                "threshold": self.threshold, **self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecisionModel:
        """Parse the file form, refusing a file written for other features."""
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError("decision model was fitted on other features; refit it with "
                             "`groundqa train decide`")
        meta = {k: v for k, v in data.items()
                if k not in {"features", "weights", "bias", "means", "scales", "threshold"}}
        return cls(tuple(data["weights"]), float(data["bias"]), tuple(data["means"]),
                   tuple(data["scales"]), float(data["threshold"]), meta)

    @classmethod
    def load(cls, path: str | Path | None = None) -> DecisionModel:
        """The packaged model, or one written by ``groundqa train decide``."""
        if path is None:
            text = resources.files("service.answer").joinpath("models/decide.json").read_text()
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))


@lru_cache(maxsize=1)
def packaged_model() -> DecisionModel:
    """``models/decide.json``, loaded once."""
    return DecisionModel.load()


def candidates_from(passages: Sequence[Passage], readings: Sequence[Reading]) -> list[Candidate]:
    """Every passage's best spans as candidates, best margin first."""
    out = [Candidate(passages[r.passage], span, r.null_score)
           for r in readings for span in r.spans]
    out.sort(key=lambda c: c.margin, reverse=True)
    return out


def same_answer(a: str, b: str) -> bool:
    """Whether two short answers say the same thing: the same number ("6.5 thousand" =
    "6,500"), or one containing the other once folded."""
    quantity = same_quantity(a, b)
    if quantity is not None:
        return quantity
    fa, fb = fold(a).strip(), fold(b).strip()
    return bool(fa and fb) and (fa in fb or fb in fa)


def describe(question: str, best: Candidate, readings: Sequence[Reading],
             document_text: str) -> tuple[dict[str, float], tuple[str, ...]]:
    """The feature values of ``best`` and the question's names its document does not mention."""
    names = names_in(question)
    folded_doc = fold(document_text)
    missing = tuple(n for n in names if not present(n, folded_doc))
    terms = content_terms(question)
    folded_passage = fold(best.passage.chunk.text)
    covered = sum(1 for t in terms if present(t, folded_passage))
    tops = [r.spans[0].text for r in readings if r.spans]
    agree = sum(1 for text in tops if same_answer(text, best.span.text))
    lowest_null = min(r.null_score for r in readings)
    values = {
        "margin": best.margin,
        "span_score": best.span.score,
        "null_score": best.null_score,
        "best_null_margin": best.span.score - lowest_null,
        "retrieval": best.passage.score,
        "dense": best.passage.dense,
        "rank": 1.0 / (best.passage.rank + 1),
        "name_coverage": 1.0 - len(missing) / len(names) if names else 1.0,
        "term_coverage": covered / len(terms) if terms else 1.0,
        "agreement": agree / max(1, len(readings)),
    }
    return values, missing


def decide(question: str, passages: Sequence[Passage], readings: Sequence[Reading],
           document_text: Any, model: DecisionModel, min_confidence: float | None = None
           ) -> Decision:
    """Answer with the best candidate when its confidence reaches the threshold, else abstain.

    ``document_text`` maps a doc id to its text with its title and outlet (only the best
    candidate's is read).
    """
    threshold = model.threshold if min_confidence is None else min_confidence
    candidates = candidates_from(passages, readings)
    if not candidates:
        return Decision(False, 0.0, None, [], reason=AbstainReason.NO_RELEVANT_PASSAGES)
    best = candidates[0]
    values, missing = describe(question, best, readings,
                               document_text(best.passage.chunk.doc_id))
    confidence = model.confidence(values)
    if confidence >= threshold:
        return Decision(True, confidence, best, candidates, values)
    reason = AbstainReason.MISSING_KEY_TERMS if missing else AbstainReason.INSUFFICIENT_SUPPORT
    return Decision(False, confidence, best, candidates, values, reason, missing)
