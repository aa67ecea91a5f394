"""Tests for service/support.py: the claim-vs-quote support checker."""

from __future__ import annotations

import numpy as np
import pytest

from index.embedding import HashEmbedder
from service.support import (
    SupportChecker,
    SupportLabel,
    SupportResult,
    SupportThresholds,
    extract_numbers,
    strip_attribution,
)

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


def test_strip_attribution() -> None:
    assert strip_attribution(
        "Nezavisimaya Gazeta (2023) reports that the plant employs 6,500 people."
    ) == "The plant employs 6,500 people."
    assert strip_attribution(
        "According to bne IntelliNews (March 2022), output fell by a third."
    ) == "Output fell by a third."
    assert strip_attribution("The plant employs 6,500 people.") == "The plant employs 6,500 people."


def test_number_normalisation() -> None:
    assert set(extract_numbers("6,500")) == set(extract_numbers("6500"))
    assert set(extract_numbers("6.5 thousand")) == {6500.0}
    assert set(extract_numbers("4 thousand")) == set(extract_numbers("4,000")) == {4000.0}
    assert set(extract_numbers("$1.2bn")) == {1.2e9}
    assert {2018.0, 2019.0} <= set(extract_numbers("the 2018–19 season"))


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


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The packaged MiniLM model, loaded once per session."""
    from index.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.mark.model
def test_real_model_labels(real_embedder) -> None:  # type: ignore[no-untyped-def]
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


def test_attribution_by_quoted_title_is_stripped() -> None:
    from service.support import strip_attribution

    claim = ("The article “Central Asia Voice Terrorism Concerns” (September 2023) reports: "
             "Tajik authorities seized about five tonnes of narcotics.")
    assert strip_attribution(claim) == "Tajik authorities seized about five tonnes of narcotics."


class FakeTokenEncoder:
    """Deterministic word-level 'contextual' vectors: each word hashes to a fixed unit vector."""

    name = "test/fake-token-encoder"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):  # type: ignore[no-untyped-def]
        import hashlib
        import re

        from service.support import TokenVectors

        self.calls += 1
        out = []
        for text in texts:
            spans = [(m.start(), m.end()) for m in re.finditer(r"\w+", text)]
            rows = []
            for start, end in spans:
                seed = int.from_bytes(
                    hashlib.blake2b(text[start:end].lower().encode(), digest_size=4).digest(),
                    "little",
                )
                v = np.random.default_rng(seed).normal(size=16)
                rows.append(v / np.linalg.norm(v))
            matrix = np.array(rows, np.float32).reshape(-1, 16)
            out.append(TokenVectors(matrix, np.array(spans, np.int32).reshape(-1, 2)))
        return out


@pytest.fixture
def aligned() -> SupportChecker:
    return SupportChecker(token_encoder=FakeTokenEncoder())


def test_alignment_mode_keeps_service_rules(aligned: SupportChecker) -> None:
    assert aligned.mode == "alignment"
    assert SupportChecker().mode == "lexical"
    verbatim = aligned.check(QUOTE, [QUOTE])
    assert verbatim.label is SupportLabel.SUPPORTED and verbatim.score >= 0.99
    number = aligned.check("The plant employs 4,000 people and remained open through March.",
                           [QUOTE])
    assert number.label is SupportLabel.UNSUPPORTED
    negated = aligned.check("The plant did not remain open through March.", [QUOTE])
    assert negated.label is not SupportLabel.SUPPORTED
    # Random fake vectors still align a little; the real-model test checks UNSUPPORTED.
    unrelated = aligned.check("The central bank raised interest rates on Tuesday.", [QUOTE])
    assert unrelated.label is not SupportLabel.SUPPORTED


def test_alignment_check_many_matches_check(aligned: SupportChecker) -> None:
    pairs = [
        (QUOTE, [QUOTE]),
        ("The plant employs 4,000 people.", [QUOTE]),
        ("The plant employs 6,500 people.", []),
        ("Output fell by a third this year.", [QUOTE, OUTPUT]),
    ]
    encoder = aligned.token_encoder
    assert isinstance(encoder, FakeTokenEncoder)
    batched = aligned.check_many(pairs)
    assert encoder.calls == 1  # one batched pass for every claim and quote
    expected = [aligned.check(c, q).score for c, q in pairs]
    assert [r.score for r in batched] == pytest.approx(expected)


def test_alignment_features_identical_text_aligns_fully() -> None:
    from service.support import ALIGNMENT_FEATURES, alignment_features

    encoder = FakeTokenEncoder()
    claim_t, quote_t, other_t = encoder.encode([QUOTE, QUOTE, OUTPUT])
    same = alignment_features(QUOTE, claim_t, [quote_t])
    assert set(same) == set(ALIGNMENT_FEATURES)
    assert same["align_prec"] == pytest.approx(1.0, abs=1e-5)
    assert same["align_unaligned"] == 0.0
    different = alignment_features(QUOTE, claim_t, [other_t])
    assert different["align_prec"] < 0.8
    assert different["align_part_min"] <= different["align_prec"] + 1e-9


def test_split_claim_into_clauses() -> None:
    from service.support import split_claim

    parts = split_claim(
        "Arnold is the publisher and editorial director of Media Play News, one of five "
        "Hollywood trades."
    )
    assert parts == [
        "Arnold is the publisher",
        "editorial director of Media Play News",
        "one of five Hollywood trades.",
    ]
    assert split_claim("The plant stayed open.") == ["The plant stayed open."]


def test_alignment_subset_keeps_the_matching_quote() -> None:
    from service.support import ALIGN_QUOTES, alignment_subset

    filler = [f"Unrelated sentence number {i} about football." for i in range(40)]
    chosen = alignment_subset(QUOTE, [*filler, QUOTE])
    assert len(chosen) == ALIGN_QUOTES and 40 in chosen


@pytest.mark.model
def test_strong_checker_with_real_model() -> None:
    from service.support import strong_checker

    checker = strong_checker()
    assert checker.mode == "alignment"
    results = checker.check_many(
        [
            (QUOTE, [QUOTE]),
            ("The plant employs 4,000 people and remained open through March.", [QUOTE]),
            ("The plant did not remain open through March.", [QUOTE]),
            ("The central bank raised interest rates on Tuesday.", [QUOTE]),
        ]
    )
    assert results[0].label is SupportLabel.SUPPORTED and results[0].score >= 0.99
    assert results[1].label is SupportLabel.UNSUPPORTED
    assert results[2].label is not SupportLabel.SUPPORTED
    assert results[3].label is SupportLabel.UNSUPPORTED
