"""Evaluate (and calibrate) the support checker on WiCE and Climate-FEVER.

Binary task: "supported" vs "not supported". WiCE's ``partially_supported`` is mapped to *not
supported*, as LLM-AggreFact does. Climate-FEVER pairs are SUPPORTS vs (REFUTES + NOT_ENOUGH_INFO).

Weights and thresholds are fitted on WiCE dev only (``--fit``) and written to
``service/support/support_weights.json``; the evaluation uses the committed weights and reports,
for the lexical (service), lexical+embedding and alignment (strong, offline) models: WiCE dev
in-sample, WiCE dev by repeated stratified 5-fold cross-validation (the number to select features
and settings by), WiCE test and Climate-FEVER. Never select on WiCE test. Usage::

    python -m eval.checker --wice ../shared/datasets/wice --climate-fever \
        ../shared/datasets/climate-fever/climate-fever.jsonl --report-dir reports/checker [--fit]

``--wice`` takes the WiCE directory or its ``claim-test.jsonl`` (``claim-dev.jsonl`` is looked
up beside it). The rooms: ``checker_data.py`` (loading, vector caches), ``checker_fit.py``
(metrics, fitting, cross-validation), ``checker_report.py`` (scoring, speed, reports) and
``checker_alignment.py`` (the alignment model); this module runs them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.checker_alignment import AlignmentChecker, MiniLMTokenEncoder
from eval.checker_data import (
    CachedEmbeddings,
    TokenVectorCache,
    load_climate_fever,
    load_wice,
    resolve_wice,
)
from eval.checker_fit import MODEL_FEATURES, cross_validate, feature_rows, fit
from eval.checker_report import evaluate_split, fmt_metric, speed_benchmark, write_reports
from service.support import SupportChecker, SupportModels
from service.support import model as support_model

DEFAULT_WEIGHTS_PATH = Path(support_model.__file__).resolve().with_name(support_model.WEIGHTS_FILE)


def run_checker_eval(
    wice_dir_or_file: Path,
    climate_fever: Path | None,
    report_dir: Path | None,
    calibrate: bool = False,
    *,
    use_model: bool = True,
    weights_path: Path = DEFAULT_WEIGHTS_PATH,
) -> dict[str, Any]:
    """Evaluate the support checker (optionally re-fitting on WiCE dev first); write reports.

    Settings: ``lexical`` (the service's model), ``lexical+embedding`` (sentence cosine) and
    ``alignment`` (the strong model, for offline evaluation). Each is reported on WiCE dev
    (in-sample: its weights and thresholds were fitted there), WiCE dev by cross-validation
    (``cv``), WiCE test, and Climate-FEVER.
    """
    dev_path, test_path = resolve_wice(wice_dir_or_file)
    embedder = None
    tokens = None
    encoder = None
    if use_model:
        from index.embedding import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
        encoder = MiniLMTokenEncoder()
        tokens = TokenVectorCache(encoder)
    dev = load_wice(dev_path) if dev_path.exists() else []
    if calibrate:
        if not dev:
            raise FileNotFoundError(f"calibration needs {dev_path}")
        models = fit(dev, embedder, weights_path, tokens)
    else:
        models = SupportModels.load(str(weights_path))
    cache = CachedEmbeddings(embedder) if embedder is not None else None

    settings: list[tuple[str, str, SupportChecker, CachedEmbeddings | None]] = [
        ("lexical", "lexical", SupportChecker(models=models), None)
    ]
    if cache is not None and models.embedding is not None:
        settings.append(
            ("lexical+embedding", "embedding", SupportChecker(embedder, models=models), cache)
        )
    if tokens is not None and models.alignment is not None:
        settings.append(
            ("alignment", "alignment", AlignmentChecker(tokens, models=models), None)
        )

    results: dict[str, Any] = {
        "task": "supported vs not supported; WiCE partially_supported counts as NOT supported "
        "(as in LLM-AggreFact); Climate-FEVER SUPPORTS vs REFUTES+NOT_ENOUGH_INFO",
        "weights": str(weights_path),
        "calibrated_now": calibrate,
        "used_by": {
            "lexical": "service (SupportChecker() in service/core.py); eval/qa.py ALCE default",
            "lexical+embedding": "comparison only",
            "alignment": "offline evaluation (eval.checker_alignment.strong_checker())",
        },
        "settings": {},
        "cv": {},
    }
    test = load_wice(test_path)
    test_supporting = load_wice(test_path, supporting_only=True)
    cf = load_climate_fever(Path(climate_fever)) if climate_fever else []
    dev_gold = np.array([ex.supported for ex in dev])
    for name, mode, checker, c in settings:
        block: dict[str, Any] = {}
        if dev:
            block["wice_dev"] = evaluate_split(checker, dev, c)
            rows = feature_rows(dev, mode, c, tokens)
            results["cv"][name] = cross_validate(rows, dev_gold, MODEL_FEATURES[mode])
        block["wice_test"] = evaluate_split(checker, test, c)
        block["wice_test_supporting_sentences_only"] = evaluate_split(checker, test_supporting, c)
        if cf:
            block["climate_fever"] = evaluate_split(checker, cf, c)
        results["settings"][name] = block
    from eval.checker_bench import shipped_summary

    # The shipped checker (trained, or lexical when its model is missing) at its own threshold.
    results.update(shipped_summary({"wice_test": test, "climate_fever": cf}, report_dir))
    results["speed"] = speed_benchmark(embedder, models, token_encoder=encoder)
    if report_dir is not None:
        write_reports(results, Path(report_dir))
        from eval.html_pages import write_checker_html

        write_checker_html(results, Path(report_dir), settings[0][2], test)  # the service's
    return results


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
                f"{setting:18s} {split:38s} BA={fmt_metric(b['balanced_accuracy'])} "
                f"P={fmt_metric(b['precision'])} R={fmt_metric(b['recall'])} "
                f"AUC={fmt_metric(m['auc'])}"
            )
    for setting, m in results.get("cv", {}).items():
        print(f"{setting:18s} {'wice_dev_cv':38s} BA={fmt_metric(m['balanced_accuracy'])} "
              f"AUC={fmt_metric(m['auc'])}")
    for k, v in results["speed"].items():
        print(f"{k}: {v:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
