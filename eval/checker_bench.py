"""Calibrate the trained support checker on dev claims and benchmark it on held-out sets.

The calibrated model is one standardised logistic regression over the cross-encoder's logit
and the structural features of ``service/support/structure.py``, fitted on the dev claims only
(each source weighted equally, classes balanced); its threshold maximises the mean balanced
accuracy over the dev sources. The benchmark scores WiCE test, QAGS-XSum and held-out
Climate-FEVER with that model at that threshold, always next to the word-coverage baseline
(share of the claim's content words found in the evidence, its threshold also chosen on dev).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.checker_fit import auc, binary_metrics, fit_logistic, oracle_balanced_accuracy
from service.support.calibrated import (
    CALIBRATION_FILE,
    MODEL_FEATURES,
    TrainedSupport,
    word_coverage,
)
from service.support.cross_encoder import CrossEncoder
from service.support.model import LogisticModel
from service.support.structure import structural_features

logger = logging.getLogger(__name__)

BINS = 10


def feature_matrix(encoder: CrossEncoder, items: Sequence[Any]) -> np.ndarray:
    """Rows of MODEL_FEATURES for (claim, quotes) items."""
    logits = encoder.claim_logits([(c.claim, c.quotes) for c in items])
    rows = []
    for item, logit in zip(items, logits, strict=True):
        values = {"ce_logit": float(max(-30.0, logit))}
        values.update(structural_features(item.claim, item.quotes))
        rows.append([values[name] for name in MODEL_FEATURES])
    return np.array(rows, dtype=np.float64)


def _mean_ba_threshold(gold: np.ndarray, scores: np.ndarray, sources: np.ndarray) -> float:
    """The cut-off that maximises the mean over sources of balanced accuracy."""
    candidates = np.unique(np.quantile(scores, np.linspace(0.01, 0.99, 197)))
    best_t, best = 0.5, -1.0
    for t in candidates:
        bas = [binary_metrics(gold[sources == s], scores[sources == s] >= t)["balanced_accuracy"]
               for s in np.unique(sources)]
        value = float(np.nanmean(bas))
        if value > best + 1e-9:
            best, best_t = value, float(t)
    return best_t


def reliability(gold: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Equal-width bins of predicted probability against the observed supported rate; ECE."""
    edges = np.linspace(0, 1, BINS + 1)
    rows, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (probs >= lo) & ((probs < hi) | (hi == 1.0))
        if not inside.any():
            continue
        mean_p, rate = float(probs[inside].mean()), float(gold[inside].mean())
        ece += inside.mean() * abs(mean_p - rate)
        rows.append({"bin": [round(lo, 2), round(hi, 2)], "n": int(inside.sum()),
                     "mean_predicted": round(mean_p, 4), "observed": round(rate, 4)})
    return {"bins": rows, "ece": round(float(ece), 4)}


def _gold(items: Sequence[Any]) -> np.ndarray:
    """Gold labels of claims (``label`` 0/1) or WiCE-style examples (``supported``)."""
    return np.array([bool(c.label) if hasattr(c, "label") and not isinstance(c.label, str)
                     else bool(c.supported) for c in items])


def score_set(items: Sequence[Any], probs: np.ndarray, threshold: float,
              baseline_threshold: float, logits: np.ndarray | None = None) -> dict[str, Any]:
    """Balanced accuracy and AUC at the shipped threshold, next to the word-coverage baseline
    (and ``oracle_balanced_accuracy`` of both: an upper bound, never a result)."""
    gold = _gold(items)
    coverage = np.array([word_coverage(c.claim, c.quotes) for c in items])
    at = binary_metrics(gold, probs >= threshold)
    base = binary_metrics(gold, coverage >= baseline_threshold)
    out = {
        "n": len(items), "n_supported": int(gold.sum()), "threshold": threshold,
        "balanced_accuracy": round(at["balanced_accuracy"], 4), "auc": round(auc(gold, probs), 4),
        "precision": round(at["precision"], 4), "recall": round(at["recall"], 4),
        "baseline_balanced_accuracy": round(base["balanced_accuracy"], 4),
        "baseline_auc": round(auc(gold, coverage), 4), "baseline_threshold": baseline_threshold,
        "oracle_threshold_balanced_accuracy": round(oracle_balanced_accuracy(gold, probs), 4),
        "baseline_oracle_threshold_balanced_accuracy": round(
            oracle_balanced_accuracy(gold, coverage), 4),
        "reliability": reliability(gold, probs),
    }
    if logits is not None:
        out["cross_encoder_only_auc"] = round(auc(gold, logits), 4)
    return out


def evaluate_shipped(items: Sequence[Any], checker: Any) -> dict[str, Any]:
    """The shipped ``SupportChecker`` exactly as the service runs it, at its binary threshold."""
    results = checker.check_many([(c.claim, list(c.quotes)) for c in items])
    probs = np.array([r.score for r in results])
    threshold = checker.thresholds_for_mode(checker.mode).binary
    trained = getattr(checker, "trained", None)
    baseline_threshold = trained.baseline_threshold if trained is not None else 0.5
    return {"checker": checker.mode, **score_set(items, probs, threshold, baseline_threshold)}


def shipped_summary(sets: dict[str, Sequence[Any]], report_dir: Path | None) -> dict[str, Any]:
    """Top-level report numbers for the shipped checker: ``balanced_accuracy`` and ``auc`` of
    the first set at the shipped threshold (and the best balanced accuracy a threshold chosen
    on its own labels would reach), the word-coverage baseline beside them, every set in
    ``shipped``, and ``reliability.png`` in ``report_dir``."""
    from service.support import SupportChecker

    checker = SupportChecker.shipped()
    blocks = {name: evaluate_shipped(items, checker) for name, items in sets.items() if items}
    first = next(iter(blocks.values()))
    if report_dir is not None:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        plot_reliability(blocks, Path(report_dir) / "reliability.png")
    return {"checker": first["checker"], "threshold": first["threshold"],
            "balanced_accuracy": first["balanced_accuracy"], "auc": first["auc"],
            "oracle_threshold_balanced_accuracy": first["oracle_threshold_balanced_accuracy"],
            "baseline": {"name": "share of claim content words in the evidence",
                         "threshold": first["baseline_threshold"],
                         "balanced_accuracy": first["baseline_balanced_accuracy"],
                         "auc": first["baseline_auc"],
                         "oracle_threshold_balanced_accuracy":
                             first["baseline_oracle_threshold_balanced_accuracy"]},
            "shipped": blocks}


def ms_per_pair(encoder: CrossEncoder, pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Median wall-clock ms per pair: all pairs in one call, and one pair per call."""
    encoder.logits(pairs[:8])  # warm-up
    batched, single = [], []
    for _ in range(3):
        start = time.perf_counter()
        encoder.logits(pairs)
        batched.append((time.perf_counter() - start) * 1000 / len(pairs))
    for pair in pairs[:40]:
        start = time.perf_counter()
        encoder.logits([pair])
        single.append((time.perf_counter() - start) * 1000)
    return {"batched_ms_per_pair": round(statistics.median(batched), 2),
            "single_pair_ms": round(statistics.median(single), 2)}


def plot_reliability(blocks: dict[str, dict[str, Any]], path: Path) -> None:
    """A reliability diagram: predicted probability against observed rate, one line per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for name, block in blocks.items():
        bins = block["reliability"]["bins"]
        ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], marker="o",
                label=f"{name} (ECE {block['reliability']['ece']:.2f})")
    ax.set_xlabel("predicted P(supported)")
    ax.set_ylabel("observed share supported")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def calibrate_and_benchmark(out: Path, fp32: Path | None, data: Any, threads: int,
                            meta: dict[str, Any]) -> dict[str, Any]:
    """Fit calibration.json on dev, benchmark every held-out set, write the reliability plot."""
    encoder = CrossEncoder.load(out / "model.onnx", threads=threads)
    dev = data.dev
    x = feature_matrix(encoder, dev)
    gold = np.array([c.label for c in dev])
    sources = np.array([c.source for c in dev])
    # Each dev source counts equally: fit on a resample that repeats the small ones.
    counts = {s: int((sources == s).sum()) for s in np.unique(sources)}
    largest = max(counts.values())
    rng = np.random.default_rng(13)
    index = np.concatenate([rng.choice(np.flatnonzero(sources == s), largest, replace=True)
                            for s in counts])
    model: LogisticModel = fit_logistic(x[index], gold[index], MODEL_FEATURES)
    probs = np.array([model.score(dict(zip(MODEL_FEATURES, row, strict=True))) for row in x])
    threshold = _mean_ba_threshold(gold, probs, sources)
    coverage = np.array([word_coverage(c.claim, c.quotes) for c in dev])
    baseline_threshold = _mean_ba_threshold(gold, coverage, sources)
    calibration = {
        "model": model.to_json(),
        "threshold": round(threshold, 4),
        "partial": round(threshold / 2, 4),
        "baseline_threshold": round(baseline_threshold, 4),
        "fitted_on": f"dev claims only: {json.dumps(counts)} (WiCE dev 20 %, Climate-FEVER "
                     "dev claims, QAGS CNN/DM dev articles, SciFact claims_validation); "
                     "sources weighted equally, classes balanced; threshold maximises the mean "
                     "balanced accuracy over the dev sources",
        "data_dir": meta.get("data_dir"),
    }
    (out / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1) + "\n")
    checker = TrainedSupport.load(out, threads=threads)
    assert checker is not None, "model.onnx and calibration.json were just written"
    dev_probs = np.array([checker.model.score(dict(zip(MODEL_FEATURES, row, strict=True)))
                          for row in x])
    blocks = {"dev": score_set(dev, dev_probs, threshold, baseline_threshold,
                               x[:, MODEL_FEATURES.index("ce_logit")])}
    for name, items in data.evaluation.items():
        logger.info("benchmark: %s (%d claims)", name, len(items))
        p, logits = checker.scores([(c.claim, c.quotes) for c in items])
        blocks[name] = score_set(items, p, threshold, baseline_threshold, logits)
    plot_reliability({k: v for k, v in blocks.items() if k != "dev"}, out / "reliability.png")
    cf = data.evaluation["climate_fever_heldout"]
    pairs = [(c.claim, c.quotes[0]) for c in cf[:200]]
    timing: dict[str, Any] = dict(ms_per_pair(encoder, pairs))
    timing["benchmark"] = (f"200 Climate-FEVER held-out claim-sentence pairs, {threads} "
                           "threads, int8, median of 3 (batched) / 40 (single)")
    comparison: dict[str, Any] = {}
    if fp32 is not None and fp32.is_file():
        fp32_encoder = CrossEncoder(fp32, threads=threads)
        sample = cf[::8]
        g = np.array([bool(c.label) for c in sample])
        comparison = {"set": "Climate-FEVER held-out, every 8th pair", "n": len(sample),
                      "int8_auc": round(auc(g, encoder.claim_logits(
                          [(c.claim, c.quotes) for c in sample])), 4),
                      "fp32_auc": round(auc(g, fp32_encoder.claim_logits(
                          [(c.claim, c.quotes) for c in sample])), 4)}
        timing["fp32"] = ms_per_pair(fp32_encoder, pairs)
    metrics = {**meta, "calibration": calibration,
               "benchmark": blocks,
               "timing": timing, "int8_vs_fp32": comparison,
               "size_mb": round((out / "model.onnx").stat().st_size / 1e6, 2)}
    write_readme(out, metrics)
    return metrics


def _table(blocks: dict[str, Any]) -> str:
    lines = ["| set | n (supported) | balanced accuracy | AUC | baseline BA | baseline AUC | "
             "cross-encoder alone AUC | ECE |", "|---|---|---|---|---|---|---|---|"]
    for name, b in blocks.items():
        lines.append(f"| {name} | {b['n']} ({b['n_supported']}) | {b['balanced_accuracy']:.3f} | "
                     f"{b['auc']:.3f} | {b['baseline_balanced_accuracy']:.3f} | "
                     f"{b['baseline_auc']:.3f} | {b['cross_encoder_only_auc']:.3f} | "
                     f"{b['reliability']['ece']:.3f} |")
    return "\n".join(lines)


def write_readme(out: Path, m: dict[str, Any]) -> None:
    """The model card: what it is, how to reproduce it, the data it saw, its scores."""
    c, tm, tr, hp = m["calibration"], m["timing"], m.get("training", {}), m.get("hyperparameters")
    commands = "\n".join(str(m[k]) for k in ("command", "calibration_command") if m.get(k))
    text = f"""# Support checker (claim, evidence) → P(supported)

{m.get("model", "")}. Used by `service/support/` (`SupportChecker`, mode `trained`): a claim is
read against its evidence as `[CLS] claim [SEP] evidence [SEP]` windows of at most 256 word
pieces (the sentences covering most of the claim's words first, then consecutive sentences);
the best window's logit and the structural features of `service/support/structure.py` go
through one logistic model (`calibration.json`) whose output is the calibrated probability
that the claim is supported. The claim is *supported* at P ≥ {c["threshold"]} (the shipped
threshold), *partial* at P ≥ {c["partial"]}, else *unsupported*.

## Reproduce

```bash
{commands}
```

From the project root; the data sets are public research data kept outside the repository
(`../shared/datasets/README.md`). Checkpoints, the data cache, the log and the fp32 ONNX file go
to `--work-dir`; `--resume` continues an interrupted run.

## Data it saw

Splits (by hash of claim or article, so no claim is in two splits):

""" + "\n".join(f"- {k}: {v}" for k, v in m.get("splits", {}).items()) + f"""

Training pairs: `{json.dumps(m.get("train_pairs", {}))}`.
Dev claims (checkpoint choice, calibration, thresholds): `{json.dumps(m.get("dev_claims", {}))}`.
Never trained on or calibrated with: WiCE test, all of QAGS-XSum, the held-out Climate-FEVER
claims.

Hyper-parameters: `{json.dumps(hp)}`.
Training: {tr.get("steps")} steps ({tr.get("steps_per_epoch")} per epoch), {tr.get("minutes")}
min, {tr.get("pairs_per_s")} pairs/s on 2 shared cores; kept: step {tr.get("best_step")}
(best mean dev AUC).

Calibration: {c["fitted_on"]}. Features and weights: `{json.dumps(c["model"])}`.

## Scores (int8 model, shipped threshold {c["threshold"]}; baseline = share of the claim's
content words in the evidence, threshold {c["baseline_threshold"]} chosen on dev)

{_table(m["benchmark"])}

Reliability diagram: `reliability.png`. int8 against fp32: `{json.dumps(m.get("int8_vs_fp32"))}`.

Size: {m["size_mb"]} MB. Speed: {tm["batched_ms_per_pair"]} ms per pair when many are checked in
one call (each pair is still read on its own), {tm["single_pair_ms"]} ms for a call with one pair
({tm["benchmark"]}).
"""
    if m.get("limits"):
        text += "\n## Limits (read before trusting the numbers)\n\n" + m["limits"].strip() + "\n"
    (out / "README.md").write_text(text)
