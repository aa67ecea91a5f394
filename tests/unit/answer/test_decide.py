"""The answer-or-abstain model: trees written as arrays, candidates ranked by probability."""

from __future__ import annotations

import numpy as np
import pytest

from eval.decide_fit import Row, choose, fit, trees_of
from index.retrieve import Passage
from index.store.contract import ChunkRecord
from service.answer.decide import FEATURES, DecisionModel, Trees, decide
from service.answer.reader import Reading, Span


def passage(rank: int, text: str, doc_id: str) -> Passage:
    chunk = ChunkRecord(rank, f"{doc_id}-0", doc_id, 0, len(text), text, 10, "Title", "Outlet",
                        None)
    return Passage(chunk, score=1.0 - rank / 10, dense=0.5, lexical=1.0, rank=rank)


def model_on(feature: str, threshold: float = 0.5) -> DecisionModel:
    weights = tuple(1.0 if name == feature else 0.0 for name in FEATURES)
    return DecisionModel(weights, 0.0, tuple(0.0 for _ in FEATURES),
                         tuple(1.0 for _ in FEATURES), threshold)


def test_written_trees_reproduce_the_fitted_model() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    x[rng.random(600) < 0.05, 2] = np.nan  # missing values take the fitted side
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 2]) > 0.2)
    fitted = HistGradientBoostingClassifier(max_depth=3, max_iter=30, random_state=0).fit(x, y)
    trees = Trees.from_json(trees_of(fitted))
    assert np.allclose(trees.raw(x), fitted.decision_function(x), atol=1e-6)


def test_the_most_probable_candidate_is_the_answer_not_the_widest_margin() -> None:
    passages = [passage(0, "Alpha said forty.", "a"), passage(1, "Beta said ninety.", "b")]
    readings = [Reading(0, 1.0, [Span(0, 11, 16, "forty", 4.0)]),
                Reading(1, 0.0, [Span(1, 10, 16, "ninety", 6.0)])]
    by_margin = decide("How many?", passages, readings, lambda _: "text", model_on("margin"))
    assert by_margin.best is not None and by_margin.best.span.text == "ninety"
    by_rank = decide("How many?", passages, readings, lambda _: "text", model_on("rank"))
    assert by_rank.best is not None and by_rank.best.span.text == "forty"
    assert [c.span.text for c in by_rank.candidates] == ["forty", "ninety"]
    assert by_rank.described[0]["rank"] == 1.0 and by_rank.described[1]["rank"] == 0.5
    assert by_rank.confidence == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_below_the_threshold_it_abstains_and_names_what_the_article_lacks() -> None:
    passages = [passage(0, "Alpha said forty.", "a")]
    readings = [Reading(0, 5.0, [Span(0, 11, 16, "forty", 1.0)])]
    decision = decide("How many did Zorbania send?", passages, readings,
                      lambda _: "Alpha said forty.", model_on("margin"))
    assert not decision.answerable and decision.best is not None
    assert decision.missing_names == ("Zorbania",)
    assert decision.reason == "missing_key_terms"


def test_fit_ranks_calibrates_and_writes_a_loadable_model() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for q in range(160):
        answerable = q % 3 != 0
        source = "squad" if q % 2 else "newsqa"
        for c in range(3):
            good = answerable and c == q % 3 - 1
            values = rng.normal(size=len(FEATURES)) + (1.5 if good else 0.0)
            rows.append(Row(q, source, f"ctx{q // 4}", answerable, good, 1.0 if good else 0.0,
                            values.tolist()))
    weights, metrics = fit(rows)
    model = DecisionModel.from_json(weights)
    assert model.trees is not None and 0.0 < model.threshold < 1.0
    trees = metrics["cross_validated"]["trees"]["all"]
    assert trees["forced_f1"] > 0.8 and trees["balanced_accuracy"] > 0.75
    x = np.array([r.features for r in rows])
    p = model.probabilities(x)
    q = choose(rows, p)
    assert q.f1[q.answerable].mean() > 0.9  # in-sample: the right candidate is ranked first


def _metrics(newsqa_ba: float, squad_ba: float) -> dict:
    return {"cross_validated": {"trees": {
        "cv_threshold": 0.3,
        "newsqa": {"balanced_accuracy": newsqa_ba, "f1": 0.2},
        "squad": {"balanced_accuracy": squad_ba, "f1": 0.5},
        "all": {"balanced_accuracy": 0.99, "f1": 0.9}}}}


def test_the_passage_count_with_the_best_mean_balanced_accuracy_is_chosen() -> None:
    from eval.decide_fit import choose_read_passages

    chosen, selection = choose_read_passages({
        5: _metrics(0.69, 0.78), 3: _metrics(0.66, 0.79), 2: _metrics(0.74, 0.73)})
    assert chosen == 2  # the "all" row is not a source and never decides
    assert selection["candidates"]["5"]["balanced_accuracy"] == pytest.approx(0.735)
    # a tie goes to fewer passages: the faster ask
    tie, _ = choose_read_passages({3: _metrics(0.70, 0.80), 1: _metrics(0.80, 0.70)})
    assert tie == 1
