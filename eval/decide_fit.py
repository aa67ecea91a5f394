"""Fit the answer-or-abstain model (service/answer/models/decide.json) on development data.

The questions are the reader's development contexts (SQuAD fold A dev paragraphs and NewsQA
dev stories: never trained on), asked over a corpus of all its training-pool contexts with a
third of the development contexts left out (their questions become unanswerable). For every
question the pipeline runs with no threshold, and every candidate span the reader proposed is
a row: *right* when the question is answerable and the span's F1 with a gold answer is at
least 0.5. Gradient-boosted trees over ``service.answer.decide.FEATURES`` score the rows (the
service answers with the best-scored candidate); a logistic calibration of their scores, fitted
on cross-validated scores, turns them into probabilities; the threshold maximises the mean over
the sources (SQuAD, NewsQA) of the abstention balanced accuracy, on cross-validated predictions
grouped by context. A logistic regression and the reader's own margin are measured beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.squad_qa import (
    SquadContext,
    build_set,
    expected_calibration_error,
    in_subset,
    ingest,
    load_contexts,
    squad_em_f1,
)

logger = logging.getLogger(__name__)

#: The trees' settings: fixed library-typical values (shallow trees, small steps, large leaves
#: for a few thousand rows), not searched.
TREE_SETTINGS = {"max_depth": 3, "max_iter": 150, "learning_rate": 0.05,
                 "min_samples_leaf": 40, "l2_regularization": 1.0}


@dataclass
class Row:
    """One candidate span of one calibration question: its features and label."""

    question: int
    source: str
    group: str
    answerable: bool
    right: bool
    f1: float
    features: list[float]


def collect(squad: Path, newsqa: Path, data_dir: Path, read_passages: int,
            limit: int | None = None) -> list[Row]:
    """Run the calibration questions through the pipeline (no threshold) and label every
    candidate span."""
    from index.embedding import load_embedder
    from index.store import Filters
    from service.answer.decide import FEATURES, DecisionModel
    from service.config import Settings
    from service.core import QAService

    contexts: list[SquadContext] = []
    asked: set[str] = set()
    for path, dev, train in ((squad, "squad-dev", lambda c: c.article < 5),
                             (newsqa, "newsqa-dev", lambda c: not in_subset(c, "newsqa-heldout"))):
        for context in load_contexts(path):
            if train(context):
                contexts.append(context)
                if in_subset(context, dev):
                    asked.add(context.key)
    source = {c.doc_id: c.key.split(":", 1)[0] for c in contexts}
    squad_set = build_set(contexts, drop_third=True, keep=lambda c: c.key in asked, limit=limit)
    settings = Settings(data_dir=data_dir, read_passages=read_passages)
    embedder = load_embedder(settings.embedder)
    ingest(squad_set, data_dir, embedder)
    # Features do not depend on the model; the margin stands in until the fit exists.
    weights = tuple(1.0 if name == "margin" else 0.0 for name in FEATURES)
    neutral = DecisionModel(weights, 0.0, tuple(0.0 for _ in FEATURES),
                            tuple(1.0 for _ in FEATURES), 0.0)
    service = QAService(settings, embedder, decision_model=neutral)
    pipeline = service.live().pipeline
    if pipeline is None:
        raise RuntimeError(f"no index could be built in {data_dir}")
    rows = []
    for i, question in enumerate(squad_set.questions):
        decision = pipeline.ask(question.question, 5, Filters(), min_confidence=0.0).decision
        candidates = decision.candidates
        for candidate, described in zip(candidates, decision.described, strict=True):
            f1 = squad_em_f1(candidate.span.text, question.answers)[1] if question.answers \
                else 0.0
            rows.append(Row(i, source[question.doc_id], question.doc_id, question.answerable,
                            question.answerable and f1 >= 0.5, f1,
                            [float(described[name]) for name in FEATURES]))
        if not candidates:  # nothing read: an abstention the model cannot change
            rows.append(Row(i, source[question.doc_id], question.doc_id, question.answerable,
                            False, 0.0, []))
        if (i + 1) % 100 == 0:
            logger.info("calibration: %d/%d questions", i + 1, len(squad_set.questions))
    return rows


def save_rows(rows: Sequence[Row], path: Path) -> None:
    """The collected rows as JSON lines (refits read them instead of asking again)."""
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows), encoding="utf-8")


def load_rows(path: Path) -> list[Row]:
    """Rows written by :func:`save_rows`."""
    return [Row(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def balanced_accuracy(scores: np.ndarray, answerable: np.ndarray, threshold: float) -> float:
    """Mean of the answer rate on answerable and the abstention rate on unanswerable."""
    answered = scores >= threshold
    return float((answered[answerable].mean() + (~answered[~answerable]).mean()) / 2)


def mean_balanced_accuracy(scores: np.ndarray, answerable: np.ndarray, sources: np.ndarray,
                           threshold: float) -> float:
    """Balanced accuracy averaged over the sources (each source counts the same)."""
    return float(np.mean([balanced_accuracy(scores[sources == s], answerable[sources == s],
                                            threshold) for s in np.unique(sources)]))


def best_threshold(scores: np.ndarray, answerable: np.ndarray,
                   sources: np.ndarray | None = None) -> float:
    """The threshold (a midpoint between observed scores) with the best balanced accuracy,
    averaged over ``sources`` when given."""
    groups = sources if sources is not None else np.zeros(len(scores), dtype=int)
    values = np.unique(scores)
    cuts = np.concatenate([[0.0], (values[1:] + values[:-1]) / 2, [1.0]])
    return float(max(cuts, key=lambda t: (
        mean_balanced_accuracy(scores, answerable, groups, t), -abs(t - .5))))


def _trees(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=0, **TREE_SETTINGS).fit(x, y)


def _logistic(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)).fit(x, y)


def _raw(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.decision_function(x), dtype=np.float64)


def trees_of(model: Any) -> dict[str, Any]:
    """A fitted ``HistGradientBoostingClassifier`` as :class:`service.answer.decide.Trees`."""
    from service.answer.decide import Trees

    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append(np.stack([nodes["feature_idx"].astype(np.float64),
                               nodes["num_threshold"].astype(np.float64),
                               nodes["left"].astype(np.float64), nodes["right"].astype(np.float64),
                               nodes["is_leaf"].astype(np.float64), nodes["value"],
                               nodes["missing_go_to_left"].astype(np.float64)], axis=1))
    return Trees(float(np.ravel(model._baseline_prediction)[0]), tuple(trees)).to_json()


@dataclass
class Questions:
    """Per question: the index of its chosen row under some scores, and what is known of it."""

    source: np.ndarray
    answerable: np.ndarray
    f1: np.ndarray  # F1 of the chosen candidate (0 when nothing was read)
    score: np.ndarray  # score of the chosen candidate (-inf when nothing was read)


def choose(rows: Sequence[Row], scores: np.ndarray) -> Questions:
    """The best-scored candidate of every question."""
    best: dict[int, int] = {}
    for i, row in enumerate(rows):
        if row.features and (row.question not in best or scores[i] > scores[best[row.question]]):
            best[row.question] = i
    first: dict[int, Row] = {}
    for row in rows:
        first.setdefault(row.question, row)
    keys = sorted(first)
    return Questions(
        np.array([first[q].source for q in keys]),
        np.array([first[q].answerable for q in keys]),
        np.array([rows[best[q]].f1 if q in best else 0.0 for q in keys]),
        np.array([scores[best[q]] if q in best else -np.inf for q in keys]))


def _cross_validated(rows: Sequence[Row], make: Callable[[np.ndarray, np.ndarray], Any],
                     folds: int) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    usable = [i for i, r in enumerate(rows) if r.features]
    x = np.array([rows[i].features for i in usable], dtype=np.float64)
    y = np.array([rows[i].right for i in usable])
    groups = np.array([rows[i].group for i in usable])
    raw = np.full(len(rows), -np.inf)
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        raw[np.array(usable)[test]] = _raw(make(x[train], y[train]), x[test])
    return raw


def _platt(raw: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """Logistic calibration (slope, intercept) of raw scores."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e6, max_iter=2000).fit(raw.reshape(-1, 1), right)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))


def _report(q: Questions, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Forced F1, F1 at the threshold, balanced accuracy, precision and calibration, per
    source and overall."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {}
    for name in [*sorted(set(q.source)), "all"]:
        mask = np.ones(len(p), bool) if name == "all" else q.source == name
        ans, f1, prob = q.answerable[mask], q.f1[mask], p[mask]
        answered = prob >= threshold
        right = ans & (f1 >= 0.5)
        out[name] = {
            "questions": int(mask.sum()), "answerable": int(ans.sum()),
            "forced_f1": round(float(f1[ans].mean()), 4),
            "f1": round(float(np.where(answered, f1, 0.0)[ans].mean()), 4),
            "answer_rate_answerable": round(float(answered[ans].mean()), 4),
            "abstain_rate_unanswerable": round(float((~answered[~ans]).mean()), 4),
            "balanced_accuracy": round(balanced_accuracy(prob, ans, threshold), 4),
            "auc_answerable": round(float(roc_auc_score(ans, prob)), 4)
            if 0 < ans.sum() < len(ans) else math.nan,
            "precision_of_answers": round(float(right[answered].mean()), 4)
            if answered.any() else math.nan,
            "expected_calibration_error": round(expected_calibration_error(
                prob, right.astype(float)), 4),
        }
    return out


def fit(rows: Sequence[Row], folds: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trees, their calibration and threshold; cross-validated metrics of the trees, of a
    logistic regression on the same rows and of the reader's margin alone."""
    from service.answer.decide import FEATURES

    right = np.array([r.right for r in rows])
    comparison: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    for name, make in (("trees", _trees), ("logistic", _logistic)):
        raw = _cross_validated(rows, make, folds)
        usable = np.isfinite(raw)
        slope, intercept = _platt(raw[usable], right[usable])
        q = choose(rows, raw)
        p = np.where(np.isfinite(q.score), _sigmoid(slope * q.score + intercept), 0.0)
        threshold = best_threshold(p, q.answerable, q.source)
        comparison[name] = {"cv_threshold": round(threshold, 4), **_report(q, p, threshold)}
        chosen[name] = (slope, intercept, threshold)
    margin = np.array([r.features[FEATURES.index("margin")] if r.features else -np.inf
                       for r in rows])
    q = choose(rows, margin)
    p = np.where(np.isfinite(q.score), _sigmoid(q.score), 0.0)
    threshold = best_threshold(p, q.answerable, q.source)
    comparison["reader_margin"] = {"cv_threshold": round(threshold, 4),
                                   **_report(q, p, threshold)}

    slope, intercept, threshold = chosen["trees"]
    usable = [r for r in rows if r.features]
    x = np.array([r.features for r in usable], dtype=np.float64)
    y = np.array([r.right for r in usable])
    model = _trees(x, y)
    trees = trees_of(model)
    from service.answer.decide import Trees

    check = Trees.from_json(trees).raw(x[:200])
    if not np.allclose(check, _raw(model, x[:200]), atol=1e-6):
        raise RuntimeError("the written trees do not reproduce the fitted model")
    zeros = [0.0] * len(FEATURES)
    weights = {"features": list(FEATURES), "weights": [], "bias": 0.0, "means": zeros,
               "scales": [1.0] * len(FEATURES), "calibration": [slope, intercept],
               "threshold": threshold, "trees": trees}
    metrics = {"questions": len({r.question for r in rows}), "candidates": len(usable),
               "right": int(y.sum()), "cross_validated": comparison}
    return weights, metrics


def choose_read_passages(fits: dict[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The passage count whose trees score the best mean cross-validated balanced accuracy
    over the sources (the threshold's own criterion); ties go to fewer passages (faster)."""
    candidates: dict[str, dict[str, float]] = {}
    for count, metrics in sorted(fits.items()):
        per_source = [m for name, m in metrics["cross_validated"]["trees"].items()
                      if isinstance(m, dict) and name != "all"]
        candidates[str(count)] = {
            "balanced_accuracy": round(float(np.mean([m["balanced_accuracy"]
                                                      for m in per_source])), 4),
            "f1": round(float(np.mean([m["f1"] for m in per_source])), 4)}
    chosen = min(fits, key=lambda n: (-candidates[str(n)]["balanced_accuracy"], n))
    return chosen, {"rule": "maximise the mean over sources of cross-validated balanced "
                            "accuracy; ties: fewer passages", "candidates": candidates}


def write_model(weights: dict[str, Any], metrics: dict[str, Any], out: Path, *,
                squad: Path, newsqa: Path, read_passages: int, command: str) -> None:
    """The decision model file, with what it was fitted on written beside the numbers."""
    data = {**weights, "read_passages": read_passages, "fitted": {
        "command": command,
        "date": dt.date.today().isoformat(),
        "data": {"squad": f"{squad.name}: subset squad-dev (questions); fold A (corpus)",
                 "newsqa": f"{newsqa.name}: subset newsqa-dev (questions); NewsQA training "
                           "stories (corpus)",
                 "drop_third": True},
        "label": "a candidate span is right when its question is gold-answerable and "
                 "F1(span, gold) >= 0.5",
        "model": {"kind": "gradient-boosted trees (scikit-learn "
                          "HistGradientBoostingClassifier) + logistic calibration",
                  "settings": TREE_SETTINGS},
        "calibration_rule": "logistic fit of the trees' 5-fold cross-validated scores "
                            "(folds grouped by context)",
        "threshold_rule": "maximise the mean over sources (SQuAD, NewsQA) of abstention "
                          "balanced accuracy on 5-fold cross-validated predictions grouped by "
                          "context",
        "metrics": metrics}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
