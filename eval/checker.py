"""Evaluate (and calibrate) the support checker on WiCE and Climate-FEVER.

Binary task: "supported" vs "not supported". WiCE's ``partially_supported`` is mapped to *not
supported*, as LLM-AggreFact does. Climate-FEVER pairs are SUPPORTS vs (REFUTES + NOT_ENOUGH_INFO).

Weights and thresholds are fitted on WiCE dev only (``fit``) and written to
``service/support_weights.json``; ``evaluate`` uses the committed weights and reports WiCE dev,
WiCE test and Climate-FEVER. Usage::

    python -m eval.checker --wice ../shared/datasets/wice --climate-fever \
        ../shared/datasets/climate-fever/climate-fever.jsonl --report-dir reports/checker [--fit]

``--wice`` takes the WiCE directory or its ``claim-test.jsonl`` (``claim-dev.jsonl`` is looked
up beside it). Sentence embeddings are cached under ``~/.cache/groundqa/checker-eval``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.support import (
    EMBEDDING_MODEL_FEATURES,
    LEXICAL_MODEL_FEATURES,
    WEIGHTS_FILE,
    LogisticModel,
    SupportChecker,
    SupportLabel,
    SupportModels,
    SupportThresholds,
    _analyse,
    _embedding_subset,
    strip_attribution,
)

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS_PATH = Path(__file__).resolve().parent.parent / "service" / WEIGHTS_FILE
CACHE_DIR = Path(os.environ.get("GROUNDQA_CACHE", Path.home() / ".cache" / "groundqa")) / (
    "checker-eval"
)
#: The strict "supported" label targets this precision on WiCE dev.
SUPPORTED_PRECISION_TARGET = 0.75
#: The "partial" band starts where this share of WiCE-dev supported claims still scores above.
PARTIAL_RECALL_TARGET = 0.9
L2 = 1.0


@dataclass(frozen=True)
class Example:
    """One claim with its candidate quotes and binary gold label (True = supported)."""

    claim: str
    quotes: tuple[str, ...]
    supported: bool
    source_label: str


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


def load_wice(path: Path, *, supporting_only: bool = False) -> list[Example]:
    """WiCE claims; quotes are all evidence sentences (or only the annotated supporting ones)."""
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            evidence = [str(s) for s in _as_list(row["evidence"])]
            if supporting_only:
                ids = sorted({i for group in _as_list(row["supporting_sentences"]) for i in group})
                evidence = [evidence[i] for i in ids if 0 <= i < len(evidence)]
            examples.append(
                Example(row["claim"], tuple(evidence), row["label"] == "supported", row["label"])
            )
    return examples


def load_climate_fever(path: Path) -> list[Example]:
    """Climate-FEVER claim–sentence pairs: SUPPORTS vs the rest."""
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            for ev in row["evidences"]:
                examples.append(
                    Example(
                        row["claim"],
                        (ev["evidence"],),
                        ev["evidence_label"] == "SUPPORTS",
                        ev["evidence_label"],
                    )
                )
    return examples


def resolve_wice(wice: Path) -> tuple[Path, Path]:
    """(dev, test) files from a WiCE directory or its claim-test.jsonl."""
    wice = Path(wice)
    if wice.is_dir():
        return wice / "claim-dev.jsonl", wice / "claim-test.jsonl"
    return wice.parent / "claim-dev.jsonl", wice


# ------------------------------------------------------------------------------------------
# Embeddings (cached: WiCE evidence is large and the model runs on CPU)
# ------------------------------------------------------------------------------------------


class CachedEmbeddings:
    """Embeds texts once per model and keeps vectors in a .npz cache on disk."""

    def __init__(self, embedder: Any, cache_dir: Path | None = CACHE_DIR) -> None:
        self.embedder = embedder
        self.cache_path = (
            cache_dir / f"{embedder.name.replace('/', '__')}.npz" if cache_dir else None
        )
        self.vectors: dict[str, np.ndarray] = {}
        if self.cache_path and self.cache_path.exists():
            with np.load(self.cache_path) as data:
                keys, vectors = data["keys"], data["vectors"]
            self.vectors = {str(k): vectors[i] for i, k in enumerate(keys)}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def ensure(self, texts: Sequence[str]) -> None:
        """Embed every text not in the cache yet."""
        missing = sorted({t for t in texts if self._key(t) not in self.vectors})
        if not missing:
            return
        logger.info("embedding %d texts", len(missing))
        for start in range(0, len(missing), 512):
            batch = missing[start : start + 512]
            for text, vec in zip(batch, self.embedder.embed(batch), strict=True):
                self.vectors[self._key(text)] = vec
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.vectors)
            np.savez(self.cache_path, keys=np.array(keys), vectors=np.stack(
                [self.vectors[k] for k in keys]))

    def get(self, text: str) -> np.ndarray:
        """The cached vector of ``text``."""
        return self.vectors[self._key(text)]


def _vectors_for(example: Example, cache: CachedEmbeddings) -> tuple[np.ndarray, np.ndarray]:
    chosen = _embedding_subset(_analyse(strip_attribution(example.claim)), example.quotes)
    dim = cache.get(example.claim).shape[0]
    quote_vectors = np.zeros((len(example.quotes), dim), np.float32)
    for i in chosen:
        quote_vectors[i] = cache.get(example.quotes[i])
    return cache.get(example.claim), quote_vectors


def _texts_to_embed(examples: Sequence[Example]) -> list[str]:
    texts: list[str] = []
    for ex in examples:
        texts.append(ex.claim)
        chosen = _embedding_subset(_analyse(strip_attribution(ex.claim)), ex.quotes)
        texts.extend(ex.quotes[i] for i in chosen)
    return texts


# ------------------------------------------------------------------------------------------
# Metrics and fitting
# ------------------------------------------------------------------------------------------


def binary_metrics(gold: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
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


def _scores(checker: SupportChecker, examples: Sequence[Example],
            cache: CachedEmbeddings | None) -> np.ndarray:
    out = []
    for ex in examples:
        if cache is not None:
            cv, qv = _vectors_for(ex, cache)
            out.append(checker.check(ex.claim, ex.quotes, claim_vector=cv, quote_vectors=qv).score)
        else:
            out.append(checker.check(ex.claim, ex.quotes).score)
    return np.array(out)


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


def fit(dev: Sequence[Example], embedder: Any | None, weights_out: Path) -> SupportModels:
    """Fit lexical and lexical+embedding models and thresholds on WiCE dev; write JSON."""
    gold = np.array([ex.supported for ex in dev])
    y = gold.astype(np.float64)
    lex_checker = SupportChecker()
    rows = [lex_checker.features(ex.claim, ex.quotes) for ex in dev]
    lexical = fit_logistic(_matrix(rows, LEXICAL_MODEL_FEATURES), y, LEXICAL_MODEL_FEATURES)
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
    empty = SupportThresholds()
    lex_models = SupportModels(lexical, None, empty, empty)
    lex_scores = _scores(SupportChecker(models=lex_models), dev, None)
    payload["lexical"] = {
        "model": lexical.to_json(),
        "thresholds": _thresholds(gold, lex_scores).__dict__,
    }
    if embedder is not None:
        cache = CachedEmbeddings(embedder)
        cache.ensure(_texts_to_embed(dev))
        rows = []
        for ex in dev:
            cv, qv = _vectors_for(ex, cache)
            rows.append(
                lex_checker.features(ex.claim, ex.quotes, claim_vector=cv, quote_vectors=qv)
            )
        names = EMBEDDING_MODEL_FEATURES
        emb = fit_logistic(_matrix(rows, names), y, names)
        emb_models = SupportModels(lexical, emb, empty, empty)
        emb_scores = _scores(SupportChecker(models=emb_models), dev, cache)
        payload["meta"]["embedder"] = embedder.name
        payload["embedding"] = {
            "model": emb.to_json(),
            "thresholds": _thresholds(gold, emb_scores).__dict__,
        }
    weights_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", weights_out)
    return SupportModels.from_json(payload)


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


def evaluate_split(
    checker: SupportChecker, examples: Sequence[Example], cache: CachedEmbeddings | None
) -> dict[str, Any]:
    """Binary metrics at the fitted binary threshold and for the strict SUPPORTED label."""
    use_emb = cache is not None
    thresholds = checker.thresholds_for(use_emb)
    gold = np.array([ex.supported for ex in examples])
    if cache is not None:
        cache.ensure(_texts_to_embed(examples))
    start = time.perf_counter()
    scores = _scores(checker, examples, cache)
    elapsed = time.perf_counter() - start
    labels = [thresholds.label_for(s) for s in scores]
    out: dict[str, Any] = {
        "binary": binary_metrics(gold, scores >= thresholds.binary),
        "label_supported": binary_metrics(gold, [lab == SupportLabel.SUPPORTED for lab in labels]),
        "label_supported_or_partial": binary_metrics(
            gold, [lab != SupportLabel.UNSUPPORTED for lab in labels]
        ),
        "oracle_threshold_balanced_accuracy": binary_metrics(
            gold, scores >= best_ba_threshold(gold, scores)
        )["balanced_accuracy"],
        "auc": _auc(gold, scores),
        "label_counts": {lab.value: sum(1 for x in labels if x == lab) for lab in SupportLabel},
        "ms_per_check": 1000 * elapsed / max(1, len(examples)),
        "thresholds": thresholds.__dict__,
    }
    return out


def _auc(gold: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[gold], scores[~gold]
    if not len(pos) or not len(neg):
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def speed_benchmark(
    embedder: Any | None, models: SupportModels | None = None, repeats: int = 200
) -> dict[str, float]:
    """ms per check for a service-sized case (1 claim, 2 quotes), with and without vectors."""
    claim = (
        "Nezavisimaya Gazeta (2023) reports that the plant employs about 6.5 thousand workers "
        "and did not close in March."
    )
    quotes = [
        "The plant, which employs 6,500 people, remained open through March despite the strikes.",
        "Managers said output had fallen by a third since the start of the year.",
    ]
    out: dict[str, float] = {}
    lexical = SupportChecker(models=models)
    lexical.check(claim, quotes)  # warm-up: loads the vocabulary and static word vectors
    _analyse.cache_clear()
    start = time.perf_counter()
    for i in range(repeats):
        lexical.check(claim + f" {i}", quotes)  # vary the claim so the analysis cache misses
    out["lexical_ms"] = 1000 * (time.perf_counter() - start) / repeats
    if embedder is not None:
        checker = SupportChecker(embedder, models=models)
        vectors = embedder.embed([claim, *quotes])  # also warms the model up
        start = time.perf_counter()
        for i in range(repeats):
            checker.check(
                claim + f" {i}", quotes, claim_vector=vectors[0], quote_vectors=vectors[1:]
            )
        out["precomputed_vectors_ms"] = 1000 * (time.perf_counter() - start) / repeats
        n = max(10, repeats // 10)
        start = time.perf_counter()
        for i in range(n):
            checker.check(claim + f" {i}", [q + f" {i}" for q in quotes])
        out["embedding_call_ms"] = 1000 * (time.perf_counter() - start) / n
        start = time.perf_counter()
        for i in range(n):
            checker.check_many([(claim + f" {i} {j}", quotes) for j in range(5)])
        out["check_many_5_claims_ms"] = 1000 * (time.perf_counter() - start) / n
    return out


def run_checker_eval(
    wice_dir_or_file: Path,
    climate_fever: Path | None,
    report_dir: Path | None,
    calibrate: bool = False,
    *,
    use_model: bool = True,
    weights_path: Path = DEFAULT_WEIGHTS_PATH,
) -> dict[str, Any]:
    """Evaluate the support checker (optionally re-fitting on WiCE dev first); write reports."""
    dev_path, test_path = resolve_wice(wice_dir_or_file)
    embedder = None
    if use_model:
        from index.embedding import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
    dev = load_wice(dev_path) if dev_path.exists() else []
    if calibrate:
        if not dev:
            raise FileNotFoundError(f"calibration needs {dev_path}")
        models = fit(dev, embedder, weights_path)
    else:
        models = SupportModels.load(str(weights_path))
    cache = CachedEmbeddings(embedder) if embedder is not None else None

    settings: list[tuple[str, SupportChecker, CachedEmbeddings | None]] = [
        ("lexical", SupportChecker(models=models), None)
    ]
    if cache is not None and models.embedding is not None:
        settings.append(("lexical+embedding", SupportChecker(embedder, models=models), cache))

    results: dict[str, Any] = {
        "task": "supported vs not supported; WiCE partially_supported counts as NOT supported "
        "(as in LLM-AggreFact); Climate-FEVER SUPPORTS vs REFUTES+NOT_ENOUGH_INFO",
        "weights": str(weights_path),
        "calibrated_now": calibrate,
        "settings": {},
    }
    test = load_wice(test_path)
    test_supporting = load_wice(test_path, supporting_only=True)
    cf = load_climate_fever(Path(climate_fever)) if climate_fever else []
    for name, checker, c in settings:
        block: dict[str, Any] = {}
        if dev:
            block["wice_dev"] = evaluate_split(checker, dev, c)
        block["wice_test"] = evaluate_split(checker, test, c)
        block["wice_test_supporting_sentences_only"] = evaluate_split(checker, test_supporting, c)
        if cf:
            block["climate_fever"] = evaluate_split(checker, cf, c)
        results["settings"][name] = block
    results["speed"] = speed_benchmark(embedder, models)
    if report_dir is not None:
        write_reports(results, Path(report_dir))
    return results


def _fmt(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"


def write_reports(results: dict[str, Any], report_dir: Path) -> None:
    """Write report.json and a readable report.md."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.json").write_text(
        json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8"
    )
    lines = ["# Support checker evaluation", "", results["task"], ""]
    lines += [
        "| setting | split | BA (binary thr) | P | R | BA (label=supported) | P | R | AUC | "
        "oracle BA | ms/check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, block in results["settings"].items():
        for split, m in block.items():
            b, s = m["binary"], m["label_supported"]
            lines.append(
                f"| {setting} | {split} | {_fmt(b['balanced_accuracy'])} | {_fmt(b['precision'])} "
                f"| {_fmt(b['recall'])} | {_fmt(s['balanced_accuracy'])} | {_fmt(s['precision'])} "
                f"| {_fmt(s['recall'])} | {_fmt(m['auc'])} | "
                f"{_fmt(m['oracle_threshold_balanced_accuracy'])} | {m['ms_per_check']:.2f} |"
            )
    lines += ["", "Speed (1 claim, 2 quotes):", ""]
    lines += [f"- {k}: {v:.2f} ms" for k, v in results["speed"].items()]
    lines += [
        "",
        "References on WiCE test: embedding cosine alone ~0.50, coverage+numbers+cosine ~0.66, "
        "AlignScore ~0.70, MiniCheck ~0.75 (balanced accuracy).",
        "Oracle BA uses the best threshold on that split itself (not fair; shows ranking quality).",
    ]
    (report_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m eval.checker --wice PATH [...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wice", type=Path, required=True, help="WiCE dir or claim-test.jsonl")
    parser.add_argument("--climate-fever", type=Path, default=None)
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument("--fit", action="store_true", help="re-fit weights on WiCE dev first")
    parser.add_argument("--lexical-only", action="store_true", help="do not load the model")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = run_checker_eval(
        args.wice, args.climate_fever, args.report_dir, calibrate=args.fit,
        use_model=not args.lexical_only, weights_path=args.weights,
    )
    for setting, block in results["settings"].items():
        for split, m in block.items():
            b = m["binary"]
            print(
                f"{setting:18s} {split:38s} BA={_fmt(b['balanced_accuracy'])} "
                f"P={_fmt(b['precision'])} R={_fmt(b['recall'])} AUC={_fmt(m['auc'])}"
            )
    for k, v in results["speed"].items():
        print(f"{k}: {v:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
