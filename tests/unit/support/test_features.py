"""Tests for service/support/features.py: splitting a claim into clause-sized parts."""

from __future__ import annotations

from service.support import split_claim


def test_split_claim_into_clauses() -> None:
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
