"""Structural features: anchors together in one sentence, number context, hedges, negation."""

from __future__ import annotations

from service.support.structure import structural_features

EVIDENCE = ["About 4,000 fighters gathered near the northern border, a commander said.",
            "The Harbour Authority reported reportedly higher grain exports from Calder."]


def test_anchors_from_two_unrelated_sentences_are_not_together() -> None:
    bridged = structural_features("The Harbour Authority said 4,000 fighters gathered.", EVIDENCE)
    stated = structural_features("About 4,000 fighters gathered near the northern border.",
                                 EVIDENCE)
    assert bridged["anchor_missing"] == 0.0  # every anchor occurs somewhere ...
    assert bridged["anchor_together"] < 1.0  # ... but never in one sentence
    assert stated["anchor_together"] == 1.0


def test_a_missing_or_displaced_number() -> None:
    assert structural_features("About 9,000 fighters gathered.", EVIDENCE)["anchor_missing"] > 0
    moved = structural_features("Grain exports reached 4,000 tonnes.", EVIDENCE)
    assert moved["number_context"] == 0.0
    assert structural_features("About 4,000 fighters gathered.", EVIDENCE)["number_context"] == 1


def test_dropped_hedge_and_negation_flip() -> None:
    dropped = structural_features("Grain exports from Calder were higher.", EVIDENCE[1:])
    kept = structural_features("Grain exports from Calder were reportedly higher.", EVIDENCE[1:])
    assert dropped["hedge_dropped"] == 1.0 and kept["hedge_dropped"] == 0.0
    flipped = structural_features("No fighters gathered near the northern border.", EVIDENCE)
    assert flipped["negation_flip"] == 1.0
