"""Tests for service/support/analysis.py: attribution stripping and number normalisation."""

from __future__ import annotations

from service.support import extract_numbers, strip_attribution


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



def test_attribution_by_quoted_title_is_stripped() -> None:
    claim = ("The article “Central Asia Voice Terrorism Concerns” (September 2023) reports: "
             "Tajik authorities seized about five tonnes of narcotics.")
    assert strip_attribution(claim) == "Tajik authorities seized about five tonnes of narcotics."
