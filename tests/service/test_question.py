"""What a question asks for, and how figures are read."""

from __future__ import annotations

import pytest

from service.question import AnswerType, aliases, analyse_question, find_numbers, has_type_evidence


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How many militants are near the border?", AnswerType.NUMBER),
        ("What was the estimated size of the Taliban army?", AnswerType.NUMBER),
        ("Who is the Taliban spokesman?", AnswerType.PERSON),
        ("Which minister denied the claim?", AnswerType.PERSON),
        ("When was the treaty signed?", AnswerType.DATE),
        ("Where were the diplomats moved?", AnswerType.PLACE),
        ("Why did Saudi Arabia close its embassy?", AnswerType.REASON),
        ("Which organization runs the camps?", AnswerType.ORGANIZATION),
        ("What did the expert propose?", AnswerType.OTHER),
    ],
)
def test_answer_type(question: str, expected: AnswerType) -> None:
    assert analyse_question(question).answer_type == expected


def test_key_terms_drop_scaffolding_and_keep_acronyms() -> None:
    analysis = analyse_question("How many IS militants did the CSTO say are near the Tajik border?")
    assert "IS" in analysis.acronyms and "CSTO" in analysis.acronyms
    assert "tajik" in analysis.named_terms
    assert "say" not in analysis.key_terms and "how" not in analysis.key_terms
    assert any(t.startswith("milit") for t in analysis.key_terms)


def test_numbers_are_normalised_and_dates_are_not_figures() -> None:
    values = {m.text: m for m in find_numbers(
        "estimated at 6.5 thousand people, about 6,500 terrorists, 4 thousand, 22% and "
        "on Wednesday, February 15, in 2022, on April 18th, three militants")}
    assert values["6.5 thousand"].value == values["6,500"].value == 6500
    assert values["4 thousand"].value == 4000
    assert values["22%"].is_percent
    assert values["15"].is_year and values["2022"].is_year and values["18"].is_year
    assert values["three"].value == 3


def test_type_evidence() -> None:
    assert has_type_evidence("about 4,000 terrorists moved", AnswerType.NUMBER)
    assert not has_type_evidence("the treaty was signed in 1992", AnswerType.NUMBER)
    assert has_type_evidence("it was signed in May 1992", AnswerType.DATE)
    assert has_type_evidence("closed due to fears of an attack", AnswerType.REASON)
    assert not has_type_evidence("the embassy was closed last week", AnswerType.REASON)
    assert has_type_evidence("said Taliban spokesman Zabiullah Mujahid", AnswerType.PERSON)


def test_aliases_link_countries_capitals_and_demonyms() -> None:
    assert "washington" in aliases("us")
    assert "dushanb" in aliases("tajik")
    assert aliases("zzz") == {"zzz"}


def test_earliest_wh_phrase_decides_the_type() -> None:
    question = "Why were the fighters who came back spared prosecution?"
    assert analyse_question(question).answer_type == AnswerType.REASON


def test_source_clause_is_separated_from_the_fact() -> None:
    analysis = analyse_question(
        "How large is the army the Taliban formed, according to the Lansing Institute note?")
    assert analysis.source_terms == ("lans", "institut")
    assert not {"lans", "institut", "note"} & set(analysis.key_terms)
    described = analyse_question("What is planned, according to a European think tank?")
    assert described.source_terms == ("european",)


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("Who is the leader of ISIS Khorasan?", ("leader",)),
        ("Who is the Taliban spokesman?", ("spokesman",)),
        ("Which Taliban minister denied the claim?", ("minist",)),
        ("Who said that 10,000 militants were there?", ()),
        ("Which countries were threatened?", ()),
    ],
)
def test_role_focus(question: str, focus: tuple[str, ...]) -> None:
    assert analyse_question(question).focus_terms == focus


def test_compound_questions_split_into_standalone_parts() -> None:
    from service.question import split_compound

    parts = split_compound("How strong is the Islamic Movement of Uzbekistan today, and does it "
                           "still have ties to the Taliban?")
    assert parts[0] == "How strong is the Islamic Movement of Uzbekistan today?"
    assert "Islamic Movement of Uzbekistan" in parts[1] and "Taliban" in parts[1]
    assert split_compound("How many militants and fighters are there?") == [
        "How many militants and fighters are there?"]
