"""Hand-computed examples for every metric in eval/metrics.py, including the NaN cases."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    CitedSentence,
    abstention_scores,
    answer_contains,
    citation_markers,
    citation_scores,
    citation_validity,
    format_metric,
    groundedness,
    hit_at_k,
    latency_percentiles,
    mean_or_nan,
    mrr_at_k,
    ndcg_at_k,
    normalise_answer,
    recall_at_k,
    reciprocal_rank,
    strip_citation_markers,
    token_f1,
)

# ------------------------------------------------------------------ normalisation


def test_normalise_answer_case_punctuation_articles_whitespace() -> None:
    assert normalise_answer("  The Quick,  brown FOX!\n") == "quick brown fox"
    assert normalise_answer("An apple a day") == "apple day"
    assert normalise_answer("Afghanistan’s “Qush Tepa” canal") == "afghanistan s qush tepa canal"


@pytest.mark.parametrize("text", ["6,500", "6500", "6.5 thousand", "6.5k", "6.5 K", "6500.0"])
def test_number_forms_share_one_canonical_value(text: str) -> None:
    assert normalise_answer(text) == "6500"


def test_number_normalisation_examples() -> None:
    assert normalise_answer("4 thousand") == normalise_answer("4,000") == "4000"
    assert normalise_answer("$100 million") == normalise_answer("100 million dollars")
    assert normalise_answer("$100 million") == "100000000 dollars"
    assert normalise_answer("US$60 million") == "60000000 dollars"
    assert normalise_answer("five to six thousand dollars") == "5 to 6000 dollars"
    assert normalise_answer("a 22% increase") == "22 percent increase"
    assert normalise_answer("it was 6.5.") == "it was 6.5"
    # Malformed thousands groups are separate numbers, not one big one.
    assert normalise_answer("2021,2022") == "2021 2022"


def test_answer_contains_uses_number_equivalence_and_token_boundaries() -> None:
    answer = "NG reports the number is estimated at 6.5 thousand people [1]."
    assert answer_contains(answer, ["6,500"])
    assert answer_contains(answer, ["nothing", "6500"])
    assert answer_contains("Russia promised more than $100 million.", ["100 million dollars"])
    assert answer_contains("Most of them, 4,000, are on the border", ["4 thousand"])
    assert not answer_contains("about 2000 fighters", ["200"])
    assert not answer_contains("anything", [])
    assert not answer_contains("anything", ["", "the"])  # empty after normalising: no match


def test_token_f1_hand_computed() -> None:
    # pred {cat, sat}; gold {cat, sat, on, mat}: P = 1, R = 1/2, F1 = 2/3.
    assert token_f1("The cat sat", "cat sat on the mat") == pytest.approx(2 / 3)
    assert token_f1("The cat sat", ["dog", "cat sat on the mat"]) == pytest.approx(2 / 3)
    # pred {6500, people}; gold {6500}: P = 1/2, R = 1, F1 = 2/3.
    assert token_f1("6.5 thousand people", ["6,500"]) == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("the", "a") == 1.0  # both empty after normalising
    assert token_f1("cat", "the") == 0.0
    assert math.isnan(token_f1("cat", []))


def test_citation_marker_helpers() -> None:
    assert strip_citation_markers("Foo bar [1][2].") == "Foo bar."
    assert strip_citation_markers("Foo [1, 3] baz [12]") == "Foo baz"
    assert citation_markers("a [1] b [2][3] c [1, 4]") == [1, 2, 3, 1, 4]
    assert citation_markers("no markers, [x] or [] here") == []


def test_mean_or_nan_and_format() -> None:
    assert mean_or_nan([1.0, math.nan, 0.0]) == 0.5
    assert math.isnan(mean_or_nan([]))
    assert math.isnan(mean_or_nan([math.nan]))
    assert format_metric(math.nan) == "n/a"
    assert format_metric(0.5) == "0.500"


# ------------------------------------------------------------------ abstention


def test_abstention_scores_hand_computed() -> None:
    # gold unanswerable: q1 q2; system abstains on q1 (right) and q3 (wrong).
    should = [True, True, False, False, False]
    did = [True, False, True, False, False]
    scores = abstention_scores(should, did)
    assert scores.precision == pytest.approx(1 / 2)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.answer_recall == pytest.approx(2 / 3)
    assert scores.balanced_accuracy == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_abstention_scores_nan_when_nothing_to_score() -> None:
    never = abstention_scores([True, False], [False, False])
    assert math.isnan(never.precision)
    assert never.recall == 0.0
    only_answerable = abstention_scores([False, False], [False, True])
    assert math.isnan(only_answerable.recall)
    assert only_answerable.answer_recall == 0.5
    assert math.isnan(only_answerable.balanced_accuracy)
    empty = abstention_scores([], [])
    assert all(math.isnan(v) for v in vars(empty).values())
    with pytest.raises(ValueError):
        abstention_scores([True], [])


# ------------------------------------------------------------------ retrieval


def test_hit_and_reciprocal_rank() -> None:
    ranked = ["a", "b", "c"]
    assert hit_at_k(ranked, {"c"}, 2) == 0.0
    assert hit_at_k(ranked, {"c"}, 3) == 1.0
    assert reciprocal_rank(ranked, ["c", "z"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, ["z"]) == 0.0
    assert hit_at_k([], {"a"}, 5) == 0.0
    assert math.isnan(hit_at_k(ranked, [], 3))
    assert math.isnan(reciprocal_rank(ranked, []))


def test_ndcg_graded_hand_computed() -> None:
    qrels = {"a": 3, "b": 2, "c": 1}
    # Ranked c, a, x: DCG = 1/log2(2) + 3/log2(3) + 0; IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4).
    expected = (1 + 3 / math.log2(3)) / (3 + 2 / math.log2(3) + 1 / 2)
    assert ndcg_at_k(["c", "a", "x", "b"], qrels, 3) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b", "c"], qrels, 3) == pytest.approx(1.0)
    assert expected == pytest.approx(0.607492, abs=1e-6)


def test_ndcg_binary_and_edge_cases() -> None:
    assert ndcg_at_k(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / math.log2(3))
    # IDCG uses min(k, |relevant|) positions: two relevant, k = 1, first hit at rank 1.
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 1) == pytest.approx(1.0)
    # A repeated id counts once (BEIR rankings are sets): a, b fill the top 2, a perfect ranking.
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 2) == pytest.approx(1.0)
    assert ndcg_at_k([], {"a": 1}, 10) == 0.0
    assert math.isnan(ndcg_at_k(["a"], {}, 10))
    assert math.isnan(ndcg_at_k(["a"], {"a": 0}, 10))


def test_recall_and_mrr_at_k() -> None:
    qrels = {"a": 1, "b": 2, "c": 0}
    ranked = ["a", "c", "x", "b"]
    assert recall_at_k(ranked, qrels, 2) == pytest.approx(1 / 2)
    assert recall_at_k(ranked, qrels, 4) == pytest.approx(1.0)
    assert mrr_at_k(["x", "y", "b"], qrels, 2) == 0.0
    assert mrr_at_k(["x", "y", "b"], qrels, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(["c", "a"], qrels, 10) == pytest.approx(1 / 2)  # relevance 0 is not a hit
    assert math.isnan(recall_at_k(ranked, {}, 5))
    assert math.isnan(mrr_at_k(ranked, {"c": 0}, 5))


# ------------------------------------------------------------------ citations and grounding


def toy_supports(claim: str, quotes: list[str]) -> bool:
    """A claim is supported if every word of it appears in the quotes taken together."""
    return set(claim.split()) <= set(" ".join(quotes).split())


def test_alce_citation_recall_and_precision_hand_computed() -> None:
    sentences = [
        CitedSentence("a b", ["a b"]),  # supported; its citation is precise
        CitedSentence("a b", ["a", "b"]),  # jointly supported; each needed: 2 precise
        CitedSentence("a b", ["a b", "c"]),  # "c" alone fails and the rest suffice: imprecise
        CitedSentence("a d", ["a"]),  # unsupported: its citation is imprecise (ALCE)
        CitedSentence("a", []),  # no citation: recall 0, adds no citation
    ]
    scores = citation_scores(sentences, toy_supports)
    assert scores.sentence_supported == [True, True, True, False, False]
    assert scores.citation_precise == [[True], [True, True], [True, False], [False], []]
    assert scores.recall == pytest.approx(3 / 5)
    assert scores.precision == pytest.approx(4 / 6)


def test_alce_redundant_citations_each_precise_when_each_supports() -> None:
    scores = citation_scores([CitedSentence("a b", ["a b", "b a"])], toy_supports)
    assert scores.citation_precise == [[True, True]]
    assert scores.precision == 1.0


def test_alce_nan_cases() -> None:
    empty = citation_scores([], toy_supports)
    assert math.isnan(empty.recall) and math.isnan(empty.precision)
    uncited = citation_scores([CitedSentence("a", [])], toy_supports)
    assert uncited.recall == 0.0
    assert math.isnan(uncited.precision)


def test_groundedness() -> None:
    assert groundedness([True, False, True, True]) == 0.75
    assert math.isnan(groundedness([]))


DOC = "Hello brave new world. Second sentence here."


def test_citation_validity_all_good() -> None:
    citations = [
        {"id": 1, "doc_id": "d", "quote": "brave new", "source_span": {"start": 6, "end": 15}}
    ]
    sentences = [{"start": 0, "end": 14, "citations": [{"id": 1}]}]
    result = citation_validity("Brave new [1].", citations, {"d": DOC}.__getitem__, sentences)
    assert result.checks == 3  # one marker, one sentence citation, one quote
    assert result.problems == []
    assert result.score == 1.0


def test_citation_validity_finds_every_kind_of_problem() -> None:
    citations = [
        {"id": 1, "doc_id": "d", "quote": "brave new", "source_span": {"start": 6, "end": 15}},
        # Off by one: the span holds "rave new ".
        {"id": 2, "doc_id": "d", "quote": "brave new", "source_span": {"start": 7, "end": 16}},
        # Exact comparison: whitespace differences are not forgiven.
        {"id": 3, "doc_id": "d", "quote": "brave  new", "source_span": {"start": 6, "end": 15}},
        {"id": 4, "doc_id": "d", "quote": "x", "source_span": {"start": 40, "end": 99}},
        {"id": 5, "doc_id": "missing", "quote": "x", "source_span": {"start": 0, "end": 1}},
        {"id": 6, "doc_id": "d", "quote": "x", "source_span": None},
    ]
    sentences = [{"start": 0, "end": 10, "citations": [{"id": 1}, {"id": 9}]}]
    answer = "One [1][7]. Two [2]."
    result = citation_validity(answer, citations, {"d": DOC}.__getitem__, sentences)
    # 3 markers + 2 sentence citations + 6 citations = 11 checks; [7], id 9 and 2..6 fail.
    assert result.checks == 11
    assert len(result.problems) == 7
    assert result.score == pytest.approx(4 / 11)
    joined = "\n".join(result.problems)
    assert "marker [7]" in joined
    assert "unknown citation id 9" in joined
    assert "citation [2] quote != document_text[7:16]" in joined
    assert "citation [3] quote" in joined
    assert "citation [4] span 40:99 outside" in joined
    assert "'missing' unavailable" in joined
    assert "citation [6] has no integer source_span" in joined


def test_citation_validity_nothing_to_check_is_nan() -> None:
    result = citation_validity("The articles do not say.", [], {}.__getitem__)
    assert result.checks == 0
    assert math.isnan(result.score)


# ------------------------------------------------------------------ latency


def test_latency_percentiles_linear() -> None:
    # Linear: p50 at index 1.5 -> 25; p95 at index 0.95 * 3 = 2.85 -> 30 + 0.85 * 10 = 38.5.
    assert latency_percentiles([40.0, 10.0, 30.0, 20.0]) == pytest.approx((25.0, 38.5))
    assert latency_percentiles([7.0]) == (7.0, 7.0)
    p50, p95 = latency_percentiles([])
    assert math.isnan(p50) and math.isnan(p95)
