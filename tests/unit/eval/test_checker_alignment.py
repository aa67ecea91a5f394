"""Tests for eval/checker_alignment.py: the token-alignment (strong) support checker."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from eval.checker_alignment import (
    ALIGN_QUOTES,
    ALIGNMENT_FEATURES,
    AlignmentChecker,
    TokenVectors,
    alignment_features,
    alignment_subset,
    strong_checker,
)
from service.support import SupportChecker, SupportLabel

QUOTE = "The plant, which employs 6,500 people, remained open through March despite the strikes."
OUTPUT = "Managers said output at the plant had fallen by a third since the start of the year."


class FakeTokenEncoder:
    """Deterministic word-level 'contextual' vectors: each word hashes to a fixed unit vector."""

    name = "test/fake-token-encoder"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):  # type: ignore[no-untyped-def]
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
def aligned() -> AlignmentChecker:
    return AlignmentChecker(FakeTokenEncoder())


def test_alignment_mode_keeps_service_rules(aligned: AlignmentChecker) -> None:
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


def test_alignment_check_many_matches_check(aligned: AlignmentChecker) -> None:
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
    encoder = FakeTokenEncoder()
    claim_t, quote_t, other_t = encoder.encode([QUOTE, QUOTE, OUTPUT])
    same = alignment_features(QUOTE, claim_t, [quote_t])
    assert set(same) == set(ALIGNMENT_FEATURES)
    assert same["align_prec"] == pytest.approx(1.0, abs=1e-5)
    assert same["align_unaligned"] == 0.0
    different = alignment_features(QUOTE, claim_t, [other_t])
    assert different["align_prec"] < 0.8
    assert different["align_part_min"] <= different["align_prec"] + 1e-9



def test_alignment_subset_keeps_the_matching_quote() -> None:
    filler = [f"Unrelated sentence number {i} about football." for i in range(40)]
    chosen = alignment_subset(QUOTE, [*filler, QUOTE])
    assert len(chosen) == ALIGN_QUOTES and 40 in chosen


@pytest.mark.model
def test_strong_checker_with_real_model() -> None:
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

