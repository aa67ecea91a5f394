"""Tests for eval/checker*.py: data loading, metrics, fitting and a small WiCE smoke run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from eval.checker_alignment import TokenVectors
from eval.checker_data import TokenVectorCache, load_climate_fever, load_wice, resolve_wice
from eval.checker_fit import best_ba_threshold, binary_metrics, cross_validate, fit_logistic
from eval.checker_report import write_reports
from service.support import SupportChecker

# Public data sets live outside the repository (../shared/datasets); override with an env var.
DATASETS = Path(
    os.environ.get("GROUNDQA_DATASETS", Path(__file__).resolve().parents[4] / "shared" / "datasets")
)
WICE = DATASETS / "wice"
CLIMATE_FEVER = DATASETS / "climate-fever" / "climate-fever.jsonl"


def test_binary_metrics() -> None:
    m = binary_metrics([True, True, False, False], [True, False, False, True])
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert math.isnan(binary_metrics([False, False], [False, False])["recall"])


def test_best_threshold_separates() -> None:
    gold = np.array([False, False, True, True])
    t = best_ba_threshold(gold, np.array([0.1, 0.2, 0.7, 0.9]))
    assert 0.2 < t <= 0.7


def test_fit_logistic_learns_direction() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(float)
    model = fit_logistic(x, y, ("a", "b"))
    assert model.weights[0] > 1.0
    assert abs(model.weights[1]) < model.weights[0] / 3
    assert model.score({"a": 2.0, "b": 0.0}) > 0.8


def test_resolve_wice(tmp_path: Path) -> None:
    assert resolve_wice(tmp_path) == (tmp_path / "claim-dev.jsonl", tmp_path / "claim-test.jsonl")
    test_file = tmp_path / "claim-test.jsonl"
    assert resolve_wice(test_file) == (tmp_path / "claim-dev.jsonl", test_file)


def test_load_wice_literal_lists(tmp_path: Path) -> None:
    row = {
        "label": "partially_supported",
        "supporting_sentences": "[[1]]",
        "claim": "A claim.",
        "evidence": "['zero', 'one', 'two']",
        "meta": {},
    }
    path = tmp_path / "claim-test.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (ex,) = load_wice(path)
    assert ex.quotes == ("zero", "one", "two") and ex.supported is False
    (only,) = load_wice(path, supporting_only=True)
    assert only.quotes == ("one",)


def test_write_reports(tmp_path: Path) -> None:
    metrics = binary_metrics([True, False], [True, False])
    block = {
        "binary": metrics, "label_supported": metrics, "auc": 1.0,
        "oracle_threshold_balanced_accuracy": 1.0, "ms_per_check": 0.1,
    }
    results = {"task": "t", "settings": {"lexical": {"wice_test": block}}, "speed": {"x_ms": 1.0}}
    write_reports(results, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["task"] == "t"
    assert "| lexical | wice_test |" in (tmp_path / "report.md").read_text()


@pytest.mark.skipif(not WICE.exists(), reason="WiCE data set not available")
def test_wice_subset_scores_supported_higher() -> None:
    examples = load_wice(WICE / "claim-dev.jsonl")[:80]
    checker = SupportChecker()
    scores = np.array([checker.check(ex.claim, ex.quotes).score for ex in examples])
    gold = np.array([ex.supported for ex in examples])
    assert gold.any() and (~gold).any()
    assert scores[gold].mean() > scores[~gold].mean()


@pytest.mark.skipif(not CLIMATE_FEVER.exists(), reason="Climate-FEVER data set not available")
def test_load_climate_fever_pairs() -> None:
    examples = load_climate_fever(CLIMATE_FEVER)
    assert len(examples) == 7675
    assert all(len(ex.quotes) == 1 for ex in examples[:50])


def test_cross_validate_separable_rows() -> None:
    rng = np.random.default_rng(1)
    gold = rng.random(100) < 0.4
    rows = [
        {"a": float(g) + rng.normal(0, 0.3), "verbatim": 0.0, "conflict": 0.0} for g in gold
    ]
    result = cross_validate(rows, gold, ("a",), folds=5, repeats=2)
    assert result["balanced_accuracy"] > 0.85
    assert result["auc"] > 0.9
    conflicted = [dict(r, conflict=1.0) for r in rows]
    assert cross_validate(conflicted, gold, ("a",), repeats=1)["balanced_accuracy"] == 0.5


def test_token_vector_cache_round_trip(tmp_path: Path) -> None:
    class Encoder:
        name = "test/encoder:tokens"
        calls = 0

        def encode(self, texts):  # type: ignore[no-untyped-def]
            Encoder.calls += 1
            return [
                TokenVectors(np.ones((len(t.split()), 4), np.float32),
                             np.array([[0, 1]] * len(t.split()), np.int32))
                for t in texts
            ]

    cache = TokenVectorCache(Encoder(), tmp_path)
    cache.ensure(["a b c", "d e"])
    again = TokenVectorCache(Encoder(), tmp_path)
    assert again.get("a b c").vectors.shape == (3, 4)
    assert again.get("d e").offsets.shape == (2, 2)
    again.ensure(["a b c"])
    assert Encoder.calls == 1


def test_report_puts_the_shipped_checker_and_the_baseline_at_the_top(tmp_path: Path) -> None:
    """Any WiCE-format file: balanced_accuracy and auc at the shipped threshold, the
    word-coverage baseline beside them, and a reliability plot."""
    from eval.checker import run_checker_eval

    evidence = ["The bridge over the river opened in 2019 after four years of work.",
                "The town council paid for it with a loan."]
    rows = [
        {"label": "supported", "claim": "The bridge opened in 2019.", "evidence": evidence},
        {"label": "supported", "claim": "The town council paid for the bridge with a loan.",
         "evidence": evidence},
        {"label": "not_supported", "claim": "The bridge opened in 2011 after ten years of work.",
         "evidence": evidence},
        {"label": "partially_supported", "claim": "The bridge, paid for by a national grant, "
         "opened in 2019.", "evidence": evidence},
    ]
    claims = tmp_path / "claims.jsonl"
    claims.write_text("".join(json.dumps({**r, "supporting_sentences": "[]", "meta": {}}) + "\n"
                              for r in rows))
    report = run_checker_eval(claims, None, tmp_path / "report", use_model=False)
    assert 0.0 <= report["balanced_accuracy"] <= 1.0 and 0.0 <= report["auc"] <= 1.0
    assert report["checker"] == SupportChecker.shipped().mode
    assert set(report["baseline"]) >= {"balanced_accuracy", "auc", "threshold",
                                       "oracle_threshold_balanced_accuracy"}
    # the best threshold on the set's own labels bounds what the shipped one reaches
    assert report["oracle_threshold_balanced_accuracy"] >= report["balanced_accuracy"]
    assert report["baseline"]["oracle_threshold_balanced_accuracy"] >= \
        report["baseline"]["balanced_accuracy"]
    assert report["shipped"]["wice_test"]["n"] == 4
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["balanced_accuracy"] == report["balanced_accuracy"]
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 1000


def test_claim_files_converted_from_other_labelled_sets_load(tmp_path: Path) -> None:
    """LLM-AggreFact-style rows: one document as evidence, 0/1 or named labels."""
    rows = [{"claim": "The bridge opened in 2019.", "doc": "The bridge opened in 2019. It rained.",
             "label": 1},
            {"claim": "It was sunny.", "evidence": "The bridge opened in 2019. It rained.",
             "label": 0},
            {"claim": "A loan paid for it.", "evidence": "['The council took a loan.']",
             "label": "SUPPORTS"},
            {"claim": "It cost more.", "evidence": ["Costs rose [sic] later."], "label": True},
            {"claim": "It is [new].", "evidence": "[new] bridges open often.",
             "label": "partially_supported"}]
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = load_wice(path)
    assert [e.supported for e in examples] == [True, False, True, True, False]
    assert examples[0].quotes == ("The bridge opened in 2019. It rained.",)
    assert examples[2].quotes == ("The council took a loan.",)
    assert examples[3].quotes == ("Costs rose [sic] later.",)
    assert examples[4].quotes == ("[new] bridges open often.",)
    path.write_text(json.dumps({"claim": "No label.", "evidence": "x"}) + "\n")
    with pytest.raises(ValueError, match="claims.jsonl:1: needs claim, evidence"):
        load_wice(path)
    path.write_text("\n" + json.dumps(rows[0]) + "\n\n" + json.dumps(["a list"]) + "\n")
    with pytest.raises(ValueError, match="claims.jsonl:4: needs claim, evidence"):
        load_wice(path)
    path.write_text(json.dumps(rows[0]) + "\n\n{'claim': 'single quotes'}\n")
    with pytest.raises(ValueError, match="claims.jsonl:3: not JSON"):
        load_wice(path)
    path.write_text(json.dumps({"claim": "Bad.", "evidence": {"a": 1}, "label": 1}) + "\n")
    with pytest.raises(ValueError, match="evidence must be text or a list"):
        load_wice(path)
