"""Hard negatives and splits of the checker's training data (synthetic sentences, real spaCy)."""

from __future__ import annotations

from eval.checker_train import balanced_subset
from eval.checker_train_data import Pair, Perturber, _abstract_sentences, _bucket

EVIDENCE = ("About 4,000 fighters gathered near the northern border in March, a commander of "
            "the Calder Guard said. Later, 600 of them moved to the eastern hills.")
CLAIM = "About 4,000 fighters gathered near the northern border in March."


def test_number_swap_takes_another_figure_from_the_passage() -> None:
    swapped = Perturber(1).number_swap(CLAIM, EVIDENCE)
    assert swapped is not None and "600" in swapped and "4,000" not in swapped


def test_entity_swap_negation_and_hedge_drop() -> None:
    perturber = Perturber(1)
    claim_doc, evidence_doc = perturber.docs(["Tomas Verin said the Calder Guard left.",
                                              "Tomas Verin and Ana Roel said the guard left."])
    swapped = perturber.entity_swap(claim_doc, evidence_doc)
    assert swapped is not None and "Ana Roel" in swapped and "Tomas Verin" not in swapped
    assert Perturber.negate("The guard was ready.") == "The guard was not ready."
    assert Perturber.negate("The guard was not ready.") is None
    assert Perturber.drop_hedge("The guard reportedly left.") == "The guard left."


def test_bridge_joins_the_subject_of_one_sentence_to_the_predicate_of_another() -> None:
    perturber = Perturber(1)
    first, second = perturber.docs(["The northern commander visited the new outpost on Monday.",
                                     "The harbour authority raised grain export fees sharply."])
    assert Perturber.bridge(first, second) == \
        "The northern commander raised grain export fees sharply."


def test_abstract_sentences_are_split_where_the_file_glued_them() -> None:
    assert _abstract_sentences(["It helps (P < 0.05) in migraine.However, not always. Done."]) \
        == ["It helps (P < 0.05) in migraine.", "However, not always.", "Done."]


def test_splits_are_stable_and_subsets_cut_large_groups_most() -> None:
    assert _bucket("cf:1", 10) == _bucket("cf:1", 10)
    pairs = [Pair(f"c{i}", "e", 0, "big") for i in range(900)] + \
        [Pair(f"s{i}", "e", 1, "small") for i in range(20)]
    subset = balanced_subset(pairs, 200)
    small = sum(p.source == "small" for p in subset)
    assert len(subset) == 200 and small / 20 > (200 - small) / 900  # the big group is cut most
    assert len(balanced_subset(pairs, 5000)) == len(pairs)
