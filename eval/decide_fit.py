"""Fit the answer-or-abstain model (service/answer/models/decide.json) on development data.

The questions are the reader's development contexts (SQuAD fold A dev paragraphs and NewsQA
dev stories: never trained on), asked over a corpus of all its training-pool contexts with a
third of the development contexts left out (their questions become unanswerable). For every
question the pipeline runs with no threshold; the reader's best span is *right* when the
question is answerable and the span's F1 with a gold answer is at least 0.5. A logistic
regression over ``service.answer.decide.FEATURES`` predicts "right"; the threshold maximises
abstention balanced accuracy on cross-validated predictions (grouped by context).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class Row:
    """One calibration question's features and label."""

    group: str
    answerable: bool
    right: bool
    features: list[float]


def collect(squad: Path, newsqa: Path, data_dir: Path, read_passages: int,
            limit: int | None = None) -> list[Row]:
    """Run the calibration questions through the pipeline (no threshold) and label them."""
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
    squad_set = build_set(contexts, drop_third=True, keep=lambda c: c.key in asked, limit=limit)
    settings = Settings(data_dir=data_dir, read_passages=read_passages)
    embedder = load_embedder(settings.embedder)
    ingest(squad_set, data_dir, embedder)
    # Features do not depend on the model; a neutral one stands in until the fit exists.
    zeros = tuple(0.0 for _ in FEATURES)
    neutral = DecisionModel(zeros, 0.0, zeros, tuple(1.0 for _ in FEATURES), 0.0)
    service = QAService(settings, embedder, decision_model=neutral)
    pipeline = service.live().pipeline
    if pipeline is None:
        raise RuntimeError(f"no index could be built in {data_dir}")
    rows = []
    for i, question in enumerate(squad_set.questions):
        outcome = pipeline.ask(question.question, 5, Filters(), min_confidence=0.0)
        decision = outcome.decision
        if decision.best is None:
            continue
        _, f1 = squad_em_f1(decision.best.span.text, question.answers)
        rows.append(Row(question.doc_id, question.answerable,
                        question.answerable and f1 >= 0.5,
                        [float(decision.features[name]) for name in FEATURES]))
        if (i + 1) % 100 == 0:
            logger.info("calibration: %d/%d questions", i + 1, len(squad_set.questions))
    return rows


def balanced_accuracy(scores: np.ndarray, answerable: np.ndarray, threshold: float) -> float:
    """Mean of the answer rate on answerable and the abstention rate on unanswerable."""
    answered = scores >= threshold
    return float((answered[answerable].mean() + (~answered[~answerable]).mean()) / 2)


def best_threshold(scores: np.ndarray, answerable: np.ndarray) -> float:
    """The threshold (a midpoint between observed scores) with the best balanced accuracy."""
    values = np.unique(scores)
    cuts = np.concatenate([[0.0], (values[1:] + values[:-1]) / 2, [1.0]])
    return float(max(cuts, key=lambda t: (balanced_accuracy(scores, answerable, t), -abs(t - .5))))


def fit(rows: Sequence[Row], folds: int = 5) -> tuple[dict[str, Any], dict[str, float]]:
    """Logistic regression (standardised features) and threshold; cross-validated metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    from service.answer.decide import FEATURES

    x = np.array([r.features for r in rows], dtype=np.float64)
    y = np.array([r.right for r in rows])
    answerable = np.array([r.answerable for r in rows])
    groups = np.array([r.group for r in rows])
    cv = np.zeros(len(rows))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        mean, scale = x[train].mean(0), x[train].std(0) + 1e-9
        model = LogisticRegression(C=1.0, max_iter=2000)
        model.fit((x[train] - mean) / scale, y[train])
        cv[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
    threshold = best_threshold(cv, answerable)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit((x - mean) / scale, y)
    metrics = {
        "questions": float(len(rows)), "right": float(y.sum()),
        "answerable": float(answerable.sum()), "unanswerable": float((~answerable).sum()),
        "cv_auc_right": float(roc_auc_score(y, cv)) if 0 < y.sum() < len(y) else math.nan,
        "cv_balanced_accuracy": balanced_accuracy(cv, answerable, threshold),
        "cv_expected_calibration_error": expected_calibration_error(cv, y.astype(float)),
        "cv_precision_of_answers": float(y[cv >= threshold].mean()) if (cv >= threshold).any()
        else math.nan,
    }
    weights = {"features": list(FEATURES), "weights": model.coef_[0].tolist(),
               "bias": float(model.intercept_[0]), "means": mean.tolist(),
               "scales": scale.tolist(), "threshold": threshold}
    return weights, metrics


def write_model(weights: dict[str, Any], metrics: dict[str, float], out: Path, *,
                squad: Path, newsqa: Path, read_passages: int, command: str) -> None:
    """The decision model file, with what it was fitted on written beside the numbers."""
    data = {**weights, "read_passages": read_passages, "fitted": {
        "command": command,
        "date": dt.date.today().isoformat(),
        "data": {"squad": f"{squad.name}: subset squad-dev (questions); fold A (corpus)",
                 "newsqa": f"{newsqa.name}: subset newsqa-dev (questions); NewsQA training "
                           "stories (corpus)",
                 "drop_third": True},
        "label": "right = gold-answerable and F1(best span, gold) >= 0.5",
        "threshold_rule": "maximise abstention balanced accuracy on 5-fold cross-validated "
                          "predictions grouped by context",
        "metrics": metrics}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
