"""Tests for service/support/checker.py: the claim-vs-quote support checker."""

from __future__ import annotations

import numpy as np
import pytest

from index.embedding import HashEmbedder, SentenceTransformerEmbedder
from service.support import SupportChecker, SupportLabel, SupportResult, SupportThresholds

QUOTE = "The plant, which employs 6,500 people, remained open through March despite the strikes."
OUTPUT = "Managers said output at the plant had fallen by a third since the start of the year."


@pytest.fixture(params=["lexical", "hash"])
def checker(request: pytest.FixtureRequest) -> SupportChecker:
    """The checker with lexical features only and with the hash-embedding fake."""
    return SupportChecker(HashEmbedder() if request.param == "hash" else None)


def test_verbatim_quote_is_supported(checker: SupportChecker) -> None:
    result = checker.check(QUOTE, [QUOTE])
    assert result.label is SupportLabel.SUPPORTED
    assert result.score >= 0.95


def test_result_shape(checker: SupportChecker) -> None:
    result = checker.check(QUOTE, [QUOTE])
    assert isinstance(result, SupportResult)
    assert 0.0 <= result.score <= 1.0
    assert isinstance(result.reasons, tuple)
    assert SupportLabel("partial") is SupportLabel.PARTIAL


def test_changed_number_is_unsupported(checker: SupportChecker) -> None:
    claim = "The plant employs 4,000 people and remained open through March."
    result = checker.check(claim, [QUOTE])
    assert result.label is SupportLabel.UNSUPPORTED
    assert any("4,000" in reason for reason in result.reasons)


def test_negated_claim_is_not_supported(checker: SupportChecker) -> None:
    result = checker.check("The plant did not remain open through March.", [QUOTE])
    assert result.label is not SupportLabel.SUPPORTED
    assert "negation mismatch" in result.reasons


def test_paraphrase_with_same_facts_is_not_unsupported(checker: SupportChecker) -> None:
    claim = "Despite strikes, the plant with 6,500 employees stayed open in March."
    assert checker.check(claim, [QUOTE]).label is not SupportLabel.UNSUPPORTED


@pytest.mark.parametrize(
    "claim",
    [
        "Nezavisimaya Gazeta (2023) reports that the plant, which employs 6,500 people, "
        "remained open through March despite the strikes.",
        "According to bne IntelliNews (March 2022), the plant, which employs 6,500 people, "
        "remained open through March despite the strikes.",
    ],
)
def test_attribution_prefix_does_not_count_against_support(
    checker: SupportChecker, claim: str
) -> None:
    result = checker.check(claim, [QUOTE])
    assert result.label is SupportLabel.SUPPORTED
    assert result.score >= 0.95




def test_equivalent_number_forms_agree(checker: SupportChecker) -> None:
    result = checker.check("The plant employs 6.5 thousand people.", [QUOTE])
    assert result.label is not SupportLabel.UNSUPPORTED
    assert not any("number" in reason for reason in result.reasons)


def test_empty_quotes_are_unsupported(checker: SupportChecker) -> None:
    result = checker.check("The plant employs 6,500 people.", [])
    assert result.label is SupportLabel.UNSUPPORTED
    assert result.score == 0.0
    assert checker.check("The plant employs 6,500 people.", ["", "  "]).score == 0.0


def test_multiple_quotes_jointly_support(checker: SupportChecker) -> None:
    claim = "The plant employs 6,500 people and its output has fallen by a third this year."
    joint = checker.check(claim, [QUOTE, OUTPUT])
    single = checker.check(claim, [QUOTE])
    assert joint.label is SupportLabel.SUPPORTED
    assert joint.score > single.score
    assert single.label is not SupportLabel.SUPPORTED


def test_unrelated_quote_is_unsupported(checker: SupportChecker) -> None:
    result = checker.check("The central bank raised interest rates on Tuesday.", [QUOTE])
    assert result.label is SupportLabel.UNSUPPORTED


def test_precomputed_vectors_match_embedder_call() -> None:
    embedder = HashEmbedder()
    checker = SupportChecker(embedder)
    claim = "Despite strikes, the plant with 6,500 employees stayed open in March."
    vectors = embedder.embed([claim, QUOTE, OUTPUT])
    direct = checker.check(claim, [QUOTE, OUTPUT])
    given = SupportChecker().check(
        claim, [QUOTE, OUTPUT], claim_vector=vectors[0], quote_vectors=vectors[1:]
    )
    assert given.score == pytest.approx(direct.score)


def test_check_many_matches_check() -> None:
    checker = SupportChecker(HashEmbedder())
    pairs = [
        (QUOTE, [QUOTE]),
        ("The plant employs 4,000 people.", [QUOTE]),
        ("The plant employs 6,500 people.", []),
        ("Output fell by a third this year.", [QUOTE, OUTPUT]),
    ]
    batched = checker.check_many(pairs)
    assert [r.label for r in batched] == [checker.check(c, q).label for c, q in pairs]
    expected = [checker.check(c, q).score for c, q in pairs]
    assert [r.score for r in batched] == pytest.approx(expected)


def test_custom_thresholds() -> None:
    strict = SupportChecker(thresholds=SupportThresholds(supported=0.999, partial=0.5, binary=0.9))
    claim = "Despite strikes, the plant with 6,500 employees stayed open in March."
    assert strict.check(claim, [QUOTE]).label is not SupportLabel.SUPPORTED
    assert SupportThresholds(0.6, 0.3, 0.45).label_for(0.4) is SupportLabel.PARTIAL


def test_many_quotes_embed_only_a_subset() -> None:
    """Long evidence lists (WiCE-style) are pre-selected lexically before embedding."""

    class CountingEmbedder(HashEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.seen += len(texts)
            return super().embed(texts)

    embedder = CountingEmbedder()
    filler = [f"Unrelated sentence number {i} about football." for i in range(40)]
    result = SupportChecker(embedder).check(QUOTE, [*filler, QUOTE])
    assert result.label is SupportLabel.SUPPORTED
    assert embedder.seen <= 9



@pytest.mark.model
def test_real_model_labels(real_embedder: SentenceTransformerEmbedder) -> None:
    checker = SupportChecker(real_embedder)
    results = checker.check_many(
        [
            (QUOTE, [QUOTE]),
            ("The plant employs 4,000 people and remained open through March.", [QUOTE]),
            ("Despite strikes, the plant with 6,500 employees stayed open in March.", [QUOTE]),
            ("The central bank raised interest rates on Tuesday.", [QUOTE]),
        ]
    )
    labels = [r.label for r in results]
    assert labels[0] is SupportLabel.SUPPORTED
    assert labels[1] is SupportLabel.UNSUPPORTED
    assert labels[2] is not SupportLabel.UNSUPPORTED
    assert labels[3] is SupportLabel.UNSUPPORTED
    assert np.isfinite([r.score for r in results]).all()

