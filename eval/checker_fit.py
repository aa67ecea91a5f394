"""Fitting the support models on WiCE dev: metrics, logistic regression, cross-validation.

``fit`` writes the lexical, embedding and alignment models with their thresholds to the
service's ``support_weights.json``; ``cross_validate`` is the number to select features and
settings by. Never select on WiCE test.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.checker_alignment import ALIGNMENT_MODEL_FEATURES, AlignmentChecker
from eval.checker_data import CachedEmbeddings, Example, TokenVectorCache
from service.support import LogisticModel, SupportChecker, SupportModels, SupportThresholds
from service.support.features import EMBEDDING_MODEL_FEATURES, LEXICAL_MODEL_FEATURES

logger = logging.getLogger(__name__)

#: The strict "supported" label targets this precision on WiCE dev.
SUPPORTED_PRECISION_TARGET = 0.75
#: The "partial" band starts where this share of WiCE-dev supported claims still scores above.
PARTIAL_RECALL_TARGET = 0.9
L2 = 1.0
CV_FOLDS = 5
CV_REPEATS = 5


def binary_metrics(
    gold: Sequence[bool] | np.ndarray, predicted: Sequence[bool] | np.ndarray
) -> dict[str, float]:
    """Balanced accuracy, precision/recall of "supported", and counts. NaN when undefined."""
    g = np.asarray(gold, bool)
    p = np.asarray(predicted, bool)
    tp = int((g & p).sum())
    tn = int((~g & ~p).sum())
    fp = int((~g & p).sum())
    fn = int((g & ~p).sum())
    tpr = tp / (tp + fn) if tp + fn else math.nan
    tnr = tn / (tn + fp) if tn + fp else math.nan
    precision = tp / (tp + fp) if tp + fp else math.nan
    return {
        "balanced_accuracy": (tpr + tnr) / 2,
        "precision": precision,
        "recall": tpr,
        "specificity": tnr,
        "n": len(g),
        "n_supported": int(g.sum()),
    }


def best_ba_threshold(gold: np.ndarray, scores: np.ndarray) -> float:
    """The cut-off (midpoint between neighbouring scores) that maximises balanced accuracy."""
    candidates = np.unique(scores)
    mids = np.concatenate([[0.0], (candidates[1:] + candidates[:-1]) / 2, [1.0]])
    best_t, best = 0.5, -1.0
    for t in mids:
        ba = binary_metrics(gold, scores >= t)["balanced_accuracy"]
        if ba > best + 1e-9:
            best, best_t = ba, float(t)
    return best_t


def oracle_balanced_accuracy(gold: np.ndarray, scores: np.ndarray) -> float:
    """The best balanced accuracy any single threshold reaches when chosen on these very labels:
    an upper bound that says whether calibration could still help, never a result."""
    return binary_metrics(gold, scores >= best_ba_threshold(gold, scores))["balanced_accuracy"]


def auc(gold: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[gold], scores[~gold]
    if not len(pos) or not len(neg):
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], l2: float = L2
) -> LogisticModel:
    """L2-regularised, class-balanced logistic regression (scipy L-BFGS)."""
    from scipy.optimize import minimize

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    pos = y.mean()
    sample_w = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    n = len(y)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        logits = z @ w + b
        p = 1 / (1 + np.exp(-logits))
        eps = 1e-12
        ll = -(sample_w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum() / n
        reg = 0.5 * l2 * (w @ w) / n
        grad_logit = sample_w * (p - y) / n
        grad_w = z.T @ grad_logit + l2 * w / n
        return ll + reg, np.concatenate([grad_w, [grad_logit.sum()]])

    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return LogisticModel(
        features=tuple(names),
        weights=tuple(float(v) for v in result.x[:-1]),
        bias=float(result.x[-1]),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
    )


def _matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[r[name] for name in names] for r in rows], dtype=np.float64)


#: (features, what the checker needs) per model; "tokens" = token-alignment cache.
MODEL_FEATURES = {
    "lexical": LEXICAL_MODEL_FEATURES,
    "embedding": EMBEDDING_MODEL_FEATURES,
    "alignment": ALIGNMENT_MODEL_FEATURES,
}


def feature_rows(
    examples: Sequence[Example],
    mode: str,
    cache: CachedEmbeddings | None = None,
    tokens: TokenVectorCache | None = None,
) -> list[dict[str, float]]:
    """Raw feature values of each example for ``mode`` (vectors from the on-disk caches)."""
    checker = (
        AlignmentChecker(tokens) if mode == "alignment" and tokens is not None else SupportChecker()
    )
    if mode == "embedding":
        assert cache is not None
        cache.ensure_for(examples)
    if mode == "alignment":
        assert tokens is not None
        tokens.ensure_for(examples)
    rows = []
    for ex in examples:
        if mode == "embedding" and cache is not None:
            cv, qv = cache.vectors_for(ex)
            rows.append(checker.features(ex.claim, ex.quotes, claim_vector=cv, quote_vectors=qv))
        else:
            rows.append(checker.features(ex.claim, ex.quotes))
    return rows


def rule_scores(
    model: LogisticModel, rows: Sequence[dict[str, float]], conflict_cap: float = 0.0
) -> np.ndarray:
    """Model scores with the checker's hard rules (verbatim -> 0.99, conflict -> capped low)."""
    out = []
    for r in rows:
        s = model.score(r)
        if r["verbatim"]:
            s = max(s, 0.99)
        elif r["conflict"]:
            # The checker caps below the partial band, hence below any binary cut-off.
            s = min(s, conflict_cap)
        out.append(s)
    return np.array(out)


def cross_validate(
    rows: Sequence[dict[str, float]],
    gold: np.ndarray,
    names: Sequence[str],
    folds: int = CV_FOLDS,
    repeats: int = CV_REPEATS,
) -> dict[str, float]:
    """Stratified k-fold CV (repeated): fit weights and the binary cut-off on k-1 folds."""
    x_rows = list(rows)
    y = gold.astype(np.float64)
    bas, aucs = [], []
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        pos = rng.permutation(np.flatnonzero(gold))
        neg = rng.permutation(np.flatnonzero(~gold))
        predicted = np.zeros(len(gold), bool)
        scores = np.zeros(len(gold))
        for k in range(folds):
            held = np.concatenate([pos[k::folds], neg[k::folds]])
            train = np.setdiff1d(np.arange(len(gold)), held)
            model = fit_logistic(_matrix([x_rows[i] for i in train], names), y[train], names)
            cut = best_ba_threshold(gold[train], rule_scores(model, [x_rows[i] for i in train]))
            scores[held] = rule_scores(model, [x_rows[i] for i in held])
            predicted[held] = scores[held] >= cut
        bas.append(binary_metrics(gold, predicted)["balanced_accuracy"])
        aucs.append(auc(gold, scores))
    return {
        "balanced_accuracy": float(np.mean(bas)),
        "balanced_accuracy_std": float(np.std(bas)),
        "auc": float(np.mean(aucs)),
        "folds": folds,
        "repeats": repeats,
    }


def _thresholds(gold: np.ndarray, scores: np.ndarray) -> SupportThresholds:
    binary = best_ba_threshold(gold, scores)
    supported = binary
    for t in np.unique(scores):
        if t < binary:
            continue
        m = binary_metrics(gold, scores >= t)
        if m["precision"] >= SUPPORTED_PRECISION_TARGET and m["recall"] >= 0.2:
            supported = float(t)
            break
    else:
        supported = float(np.quantile(scores[gold], 0.5)) if gold.any() else binary
    partial = float(np.quantile(scores[gold], 1 - PARTIAL_RECALL_TARGET)) if gold.any() else 0.3
    partial = min(partial, binary)
    return SupportThresholds(
        supported=round(supported, 4), partial=round(partial, 4), binary=round(binary, 4)
    )


def fit(
    dev: Sequence[Example],
    embedder: Any | None,
    weights_out: Path,
    tokens: TokenVectorCache | None = None,
) -> SupportModels:
    """Fit the lexical, embedding and alignment models and thresholds on WiCE dev; write JSON."""
    gold = np.array([ex.supported for ex in dev])
    y = gold.astype(np.float64)
    payload: dict[str, Any] = {
        "meta": {
            "fitted_on": "WiCE claim-dev.jsonl (partially_supported -> not supported)",
            "n": len(dev),
            "l2": L2,
            "reproduce": "python -m eval.checker --wice ../shared/datasets/wice --fit",
            "supported_precision_target": SUPPORTED_PRECISION_TARGET,
            "partial_recall_target": PARTIAL_RECALL_TARGET,
        },
    }
    caches: dict[str, tuple[CachedEmbeddings | None, TokenVectorCache | None]] = {
        "lexical": (None, None)
    }
    if embedder is not None:
        caches["embedding"] = (CachedEmbeddings(embedder), None)
        payload["meta"]["embedder"] = embedder.name
    if tokens is not None:
        caches["alignment"] = (None, tokens)
        payload["meta"]["token_encoder"] = tokens.encoder.name
    for mode, (cache, tok) in caches.items():
        names = MODEL_FEATURES[mode]
        rows = feature_rows(dev, mode, cache, tok)
        model = fit_logistic(_matrix(rows, names), y, names)
        # Thresholds from the scores the checker will produce (hard rules included).
        scores = rule_scores(model, rows, conflict_cap=SupportThresholds().partial * 0.9)
        payload[mode] = {"model": model.to_json(), "thresholds": _thresholds(gold, scores).__dict__}
    weights_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", weights_out)
    return SupportModels.from_json(payload)

