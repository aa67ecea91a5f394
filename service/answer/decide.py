"""Answer or abstain: every span the reader proposed, described by a few features, scored
with a calibrated probability that it is right; the most probable one is the answer when that
probability reaches the threshold.

The model (gradient-boosted trees over ``FEATURES``, then a logistic calibration) and the
threshold come from ``groundqa train decide`` (eval/decide_fit.py) run on public development
data; they live in ``models/decide.json`` with the data they were fitted on written beside
them. Nothing here is set by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from corpus.text import content_terms, fold, names_in, present
from corpus.text.numbers import same_quantity
from index.retrieve import Passage
from service.answer.reader import Reading, Span

#: The features of one candidate span the decision model reads, in order (see ``describe``).
FEATURES = (
    "margin",          # span score minus its passage's no-answer score
    "span_score",      # start + end logits of the span
    "null_score",      # no-answer logit of the span's passage
    "best_null_margin",  # span score minus the lowest no-answer score of any passage
    "retrieval",       # fused retrieval score of the span's passage
    "dense",           # cosine of the question and that passage
    "rank",            # 1 / retrieval rank of that passage
    "name_coverage",   # share of the question's names its document (text, title, outlet) has
    "term_coverage",   # share of the question's content terms that the passage mentions
    "agreement",       # share of read passages whose best span says the same
    "margin_gap",      # margin minus the best margin of any candidate (0 for the best)
    "score_gap",       # span score minus the best span score of any candidate
    "span_words",      # length of the span in words
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
    #: The feature values of every candidate, in the order of ``candidates``.
    described: list[dict[str, float]] = field(default_factory=list)
    #: Spans from further retrieved passages of other articles, read after the decision only
    #: to quote articles that give the same answer or a differing figure; never scored.
    others: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class Trees:
    """A fitted ensemble of binary regression trees (scikit-learn's histogram gradient
    boosting, written out as arrays so that no pickle is loaded at run time).

    Each tree is an array of nodes with the columns ``feature, threshold, left, right, leaf,
    value, missing_left``; a value goes left when it is ``<= threshold`` (NaN follows
    ``missing_left``). The raw score is ``baseline`` plus the leaf values of every tree."""

    baseline: float
    trees: tuple[np.ndarray, ...]
    # All trees as one node array (child indices shifted into it) and each tree's root in it:
    # walked together, one round of array operations per tree level instead of per tree.
    _nodes: np.ndarray = field(init=False, repr=False, compare=False)
    _roots: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = [len(nodes) for nodes in self.trees]
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        nodes = np.concatenate(self.trees) if self.trees else np.zeros((0, 7))
        for root, size in zip(roots, sizes, strict=True):
            nodes[root:root + size, 2:4] += root
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_roots", roots)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds before calibration) of the rows of ``x``."""
        nodes, roots = self._nodes, self._roots
        if not len(roots) or not len(x):
            return np.full(len(x), self.baseline, dtype=np.float64)
        at = np.repeat(roots[:, None], len(x), axis=1)  # (trees, rows): the node each is at
        rows = np.broadcast_to(np.arange(len(x)), at.shape)
        while True:
            node = nodes[at]
            leaf = node[..., 4] > 0
            if leaf.all():
                break
            value = x[rows, node[..., 0].astype(np.int64)]
            left = np.where(np.isnan(value), node[..., 6] > 0, value <= node[..., 1])
            step = np.where(left, node[..., 2], node[..., 3]).astype(np.int64)
            at = np.where(leaf, at, step)
        return self.baseline + nodes[at, 5].sum(axis=0)

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {"baseline": self.baseline, "columns": ["feature", "threshold", "left", "right",
                                                       "leaf", "value", "missing_left"],
                "trees": [t.tolist() for t in self.trees]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trees:
        """Parse the file form."""
        return cls(float(data["baseline"]),
                   tuple(np.asarray(t, dtype=np.float64).reshape(-1, 7) for t in data["trees"]))


@dataclass(frozen=True)
class DecisionModel:
    """Probability that a candidate span is right, and the abstention threshold.

    The raw score is a linear function of the standardised ``FEATURES`` (``weights``; empty
    for none) plus the trees' score (``trees``; None for none); ``calibration`` = (slope,
    intercept) maps it to a probability through the logistic function."""

    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    trees: Trees | None = field(default=None, compare=False)
    calibration: tuple[float, float] = (1.0, 0.0)

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """Uncalibrated scores of feature rows (columns in ``FEATURES`` order)."""
        z = np.full(len(rows), self.bias, dtype=np.float64)
        if self.weights:
            z += ((rows - np.asarray(self.means)) / np.asarray(self.scales)) @ np.asarray(
                self.weights)
        if self.trees is not None:
            z += self.trees.raw(rows)
        return z

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated probabilities that each row's candidate is right."""
        slope, intercept = self.calibration
        z = np.clip(slope * self.raw(rows) + intercept, -30.0, 30.0)
        return 1.0 / (1.0 + np.exp(-z))

    def confidence(self, values: dict[str, float]) -> float:
        """Probability that the candidate described by ``values`` is a right answer."""
        row = np.array([[float(values[name]) for name in FEATURES]], dtype=np.float64)
        return float(self.probabilities(row)[0])

    def to_json(self) -> dict[str, Any]:
        """The file form (``models/decide.json``)."""
        data: dict[str, Any] = {"features": list(FEATURES), "weights": list(self.weights),
                                "bias": self.bias, "means": list(self.means),
                                "scales": list(self.scales),
                                "calibration": list(self.calibration),
                                "threshold": self.threshold}
        if self.trees is not None:
            data["trees"] = self.trees.to_json()
        return {**data, **self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecisionModel:
        """Parse the file form, refusing a file written for other features."""
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError("decision model was fitted on other features; refit it with "
                             "`groundqa train decide`")
        own = {"features", "weights", "bias", "means", "scales", "threshold", "trees",
               "calibration"}
        meta = {k: v for k, v in data.items() if k not in own}
        trees = Trees.from_json(data["trees"]) if data.get("trees") else None
        slope, intercept = data.get("calibration", (1.0, 0.0))
        return cls(tuple(data["weights"]), float(data["bias"]), tuple(data["means"]),
                   tuple(data["scales"]), float(data["threshold"]), meta, trees,
                   (float(slope), float(intercept)))

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


def describe(question: str, candidates: Sequence[Candidate], readings: Sequence[Reading],
             missing: dict[str, tuple[str, ...]]) -> list[dict[str, float]]:
    """The feature values of every candidate; ``missing`` maps each candidate's doc id to the
    question's names that document lacks (``missing_names``)."""
    names = names_in(question)
    terms = content_terms(question)
    tops = [r.spans[0].text for r in readings if r.spans]
    lowest_null = min((r.null_score for r in readings), default=0.0)
    best_margin = max((c.margin for c in candidates), default=0.0)
    best_score = max((c.span.score for c in candidates), default=0.0)
    term_share: dict[str, float] = {}
    out = []
    for c in candidates:
        doc_id, chunk = c.passage.chunk.doc_id, c.passage.chunk
        if chunk.chunk_id not in term_share:
            folded_passage = fold(chunk.text)
            covered = sum(1 for t in terms if present(t, folded_passage))
            term_share[chunk.chunk_id] = covered / len(terms) if terms else 1.0
        agree = sum(1 for text in tops if same_answer(text, c.span.text))
        out.append({
            "margin": c.margin,
            "span_score": c.span.score,
            "null_score": c.null_score,
            "best_null_margin": c.span.score - lowest_null,
            "retrieval": c.passage.score,
            "dense": c.passage.dense,
            "rank": 1.0 / (c.passage.rank + 1),
            "name_coverage": 1.0 - len(missing[doc_id]) / len(names) if names else 1.0,
            "term_coverage": term_share[chunk.chunk_id],
            "agreement": agree / max(1, len(readings)),
            "margin_gap": c.margin - best_margin,
            "score_gap": c.span.score - best_score,
            "span_words": float(len(c.span.text.split())),
        })
    return out


def missing_names(question: str, document_text: str) -> tuple[str, ...]:
    """The question's names that a document (text, title, outlet) does not mention."""
    folded = fold(document_text)
    return tuple(n for n in names_in(question) if not present(n, folded))


def decide(question: str, passages: Sequence[Passage], readings: Sequence[Reading],
           document_text: Any, model: DecisionModel, min_confidence: float | None = None
           ) -> Decision:
    """Answer with the most probable candidate when its confidence reaches the threshold, else
    abstain.

    ``document_text`` maps a doc id to its text with its title and outlet.
    """
    threshold = model.threshold if min_confidence is None else min_confidence
    candidates = candidates_from(passages, readings)
    if not candidates:
        return Decision(False, 0.0, None, [], reason=AbstainReason.NO_RELEVANT_PASSAGES)
    missing = {doc_id: missing_names(question, document_text(doc_id))
               for doc_id in dict.fromkeys(c.passage.chunk.doc_id for c in candidates)}
    values = describe(question, candidates, readings, missing)
    rows = np.array([[v[name] for name in FEATURES] for v in values], dtype=np.float64)
    probabilities = model.probabilities(rows)
    order = sorted(range(len(candidates)), key=lambda i: (-probabilities[i], i))
    ranked = [candidates[i] for i in order]
    described = [values[i] for i in order]
    best, confidence = ranked[0], float(probabilities[order[0]])
    if confidence >= threshold:
        return Decision(True, confidence, best, ranked, described[0], described=described)
    lacking = missing[best.passage.chunk.doc_id]
    reason = AbstainReason.MISSING_KEY_TERMS if lacking else AbstainReason.INSUFFICIENT_SUPPORT
    return Decision(False, confidence, best, ranked, described[0], reason, lacking, described)
