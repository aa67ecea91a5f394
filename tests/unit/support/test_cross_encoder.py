"""Pair encoding and evidence windows shared by the checker's trainer and its runtime."""

from __future__ import annotations

from service.support.cross_encoder import (
    MAX_WINDOWS,
    PairEncoder,
    select_sentences,
    split_sentences,
)

CLAIM = "The bridge over the Calder river opened in 2019 after four years of work."


def test_short_evidence_is_one_window() -> None:
    encoder = PairEncoder()
    quotes = ["The bridge opened in 2019.", "Work had taken four years."]
    assert encoder.windows(CLAIM, quotes) == ["The bridge opened in 2019. Work had taken four "
                                              "years."]


def test_long_evidence_reads_covering_sentences_first_then_the_closest_windows() -> None:
    encoder = PairEncoder(max_length=64)
    filler = [f"Paragraph {i} talks about the weather and the harvest in the valley." for i in
              range(12)]
    sentences = ["The bridge over the Calder river opened in 2019.", *filler,
                 "It took four years of work."]
    windows = encoder.windows(CLAIM, sentences)
    assert windows[0].startswith("The bridge over the Calder") and "four years" in windows[0]
    assert len(windows) == MAX_WINDOWS
    assert windows[1].startswith("The bridge") and windows[-1].endswith("four years of work.")
    short = encoder.windows(CLAIM, sentences[:4])
    assert all(any(s in w for w in short[1:]) for s in sentences[:4])
    for window in windows:
        ids, start = encoder.encode(CLAIM, window)
        assert len(ids) <= 64 and ids[start - 1] == encoder.sep_id


def test_pairs_are_cut_to_the_maximum_length() -> None:
    encoder = PairEncoder(max_length=32)
    ids, start = encoder.encode(CLAIM, "word " * 200)
    assert len(ids) == 32 and ids[0] == encoder.cls_id and ids[-1] == encoder.sep_id
    batch = encoder.batch([(ids, start), encoder.encode("short", "evidence")])
    assert batch["input_ids"].shape == (2, 32)
    assert batch["token_type_ids"][0, start] == 1 and batch["token_type_ids"][0, start - 1] == 0


def test_sentence_helpers() -> None:
    assert split_sentences("One fact. Another one! A third?") == ["One fact.", "Another one!",
                                                                   "A third?"]
    assert select_sentences("river bridge opened", ["Rain fell.", "The bridge opened.",
                                                    "The river rose."]) == [1, 2]


def test_a_pair_scores_the_same_whatever_is_checked_with_it() -> None:
    """The int8 model quantises activations per call: each pair must be read on its own."""
    from service.support.cross_encoder import CrossEncoder

    encoder = CrossEncoder.load(threads=1)
    pair = (CLAIM, "The bridge over the Calder river opened in 2019. Work began in 2015.")
    [alone] = encoder.logits([pair])
    company = [("Prices rose.", "Prices fell sharply in March after the announcement. " * 8),
               ("A b.", "c"), (CLAIM, "Nothing about it.")]
    together = encoder.logits([*company, pair, *company])
    assert together[len(company)] == alone
    assert encoder.logits([company[0]])[0] == together[0]
