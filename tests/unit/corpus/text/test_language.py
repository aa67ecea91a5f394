"""The language layer: numbers with values, accent-folded names, content terms."""

from __future__ import annotations

import pytest

from corpus.text import content_terms, fold, names_in, present
from corpus.text.numbers import find_numbers, same_quantity


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("£5.2bn", 5.2e9, "money"),
    ("one million", 1e6, "number"),
    ("sixty", 60, "number"),
    ("two hundred and fifty", 250, "number"),
    ("1263", 1263, "year"),
    ("the 1990s", 1990, "decade"),
    ("12-1", 12, "score"),
    ("6.5 thousand", 6500, "number"),
    ("40 per cent", 40, "percent"),
    ("US$100 million", 1e8, "money"),
])
def test_numbers_have_values_and_kinds(text: str, value: float, kind: str) -> None:
    [mention] = find_numbers(text)
    assert mention.value == pytest.approx(value)
    assert mention.kind == kind
    assert text[mention.start:mention.end] == mention.text


def test_offsets_point_into_the_text() -> None:
    text = "In 2022 about 2,500 people and sixty officers were counted."
    mentions = find_numbers(text)
    assert [m.text for m in mentions] == ["2022", "2,500", "sixty"]
    assert all(text[m.start:m.end] == m.text for m in mentions)
    assert find_numbers("an attack on a town") == []


def test_same_quantity() -> None:
    assert same_quantity("6.5 thousand", "6,500") is True
    assert same_quantity("about 1,200", "2,500") is False
    assert same_quantity("the governor", "2,500") is None


def test_names_fold_accents_and_case() -> None:
    assert fold("Céloron") == fold("celoron")
    assert present("Möngke", fold("the court of Mongke Khan"))
    assert not present("Rollo", fold("the Viking leader Harald"))


def test_names_and_terms_of_a_question() -> None:
    names = names_in("What did Hero of Alexandria invent in Egypt?")
    assert any("Alexandria" in n for n in names) and "Egypt" in names
    assert "invent" in content_terms("What did Hero of Alexandria invent?")
    assert "what" not in content_terms("What did Hero of Alexandria invent?")
