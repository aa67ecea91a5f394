"""The deterministic follow-up rewriter (service/rewrite.py)."""

from __future__ import annotations

import pytest

from service.rewrite import is_followup, rewrite_followup

FIRST = "How many IS militants are in Afghanistan?"


@pytest.mark.parametrize(
    ("history", "question", "expected"),
    [
        ([FIRST], "and how many of them are near the Tajik border?",
         "How many IS militants are near the Tajik border?"),
        ([FIRST], "What about Uzbekistan?", "How many IS militants are in Uzbekistan?"),
        ([FIRST], "and in 2022?", "How many IS militants are in Afghanistan in 2022?"),
        ([FIRST], "What weapons do they have?", "What weapons do IS militants have?"),
        (["Why did Saudi Arabia close its embassy in Kabul?"], "Where did its diplomats go?",
         "Where did Saudi Arabia's diplomats go?"),
        # Chains: the second follow-up builds on the first one's standalone form.
        ([FIRST, "and how many of them are near the Tajik border?"], "what about Uzbekistan?",
         "How many IS militants are near the Uzbekistan border?"),
    ],
)
def test_follow_ups_become_standalone(history: list[str], question: str, expected: str) -> None:
    result = rewrite_followup(history, question)
    assert result.standalone == expected
    assert result.rewritten and result.method == "deterministic"
    assert result.original == question


def test_standalone_questions_are_left_alone() -> None:
    question = "Why did Saudi Arabia close its embassy in Kabul?"
    assert not is_followup(question)  # "its" has its antecedent in the question
    result = rewrite_followup([FIRST], question)
    assert result.standalone == question and not result.rewritten and result.method == "none"


def test_no_history_means_no_rewrite() -> None:
    result = rewrite_followup([], "and how many of them are near the Tajik border?")
    assert not result.rewritten


def test_very_short_questions_carry_the_topic() -> None:
    result = rewrite_followup(["What did the Taliban say about the CSTO exercises?"], "why?")
    assert result.rewritten
    assert "Taliban" in result.standalone and "CSTO" in result.standalone
    assert result.standalone.lower().endswith("why?")
