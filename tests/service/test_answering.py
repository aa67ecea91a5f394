"""The extractive answerer with the fake embedder: selection, neighbours, conflicts, abstention."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from corpus.errors import EmptyQuestion, InvalidRequest
from corpus.loader import parse_document
from index.embedding import HashEmbedder
from index.store import IndexWriter
from service.answering import format_published
from service.config import Settings
from service.core import QAService, clean_question
from service.schemas import AskRequest, FiltersIn

ARTICLES = {
    "alpha": ("Alpha Times", "2021-05", "Border report from Alpha\n\n"
              "The ministry of defence published its annual review on Monday. The number of "
              "smugglers arrested on the northern border is estimated at 1,200 people. Most of "
              "them – 800 – were caught near the river crossing. Officials blamed poverty for the "
              "rise in smuggling.\n\nThe governor Karim Rasulov opened a new checkpoint in March "
              "because traffic had doubled."),
    "beta": ("Beta News", "2023-02", "Smuggling update\n\n"
             "A later survey counted about 2,500 smugglers arrested on the northern border in "
             "2022. The survey was run by the Institute for Border Studies. Analysts said the "
             "figures were rising fast."),
}


@pytest.fixture
def service(tmp_path: Path) -> QAService:
    embedder = HashEmbedder(dimension=256)
    docs = [parse_document(text.encode(), name=doc_id, suffix=".txt", doc_id=doc_id,
                           metadata={"outlet": outlet, "published": published})
            for doc_id, (outlet, published, text) in ARTICLES.items()]
    IndexWriter(tmp_path, embedder).apply(docs)
    return QAService(Settings(data_dir=tmp_path, embedder="hash"), embedder)


def _guarantees(service: QAService, response) -> None:  # type: ignore[no-untyped-def]
    ids = {c.id for c in response.citations}
    assert {int(m) for m in re.findall(r"\[(\d+)\]", response.answer)} <= ids
    for citation in response.citations:
        text = service.get_document(citation.doc_id).text
        assert citation.quote == text[citation.source_span.start:citation.source_span.end]
    for sentence in response.sentences:
        assert response.answer[sentence.start:sentence.end].endswith(
            f"[{sentence.citations[0].id}]")


def test_answer_is_verbatim_attributed_and_cited(service: QAService) -> None:
    response = service.ask(AskRequest(question="Why did the governor open a new checkpoint?"))
    assert response.answerable, response.answer
    assert "because traffic had doubled" in response.answer
    assert response.answer.startswith("Alpha Times (May 2021) reports:")
    assert all(s.citations[0].support.label == "supported" for s in response.sentences)
    _guarantees(service, response)


def test_pronoun_sentence_brings_its_antecedent(service: QAService) -> None:
    response = service.ask(AskRequest(
        question="How many smugglers were caught near the river crossing?"))
    assert response.answerable
    assert "800" in response.answer
    # "Most of them – 800 –" only makes sense with the sentence that says who "them" are.
    assert "number of smugglers arrested" in response.answer
    _guarantees(service, response)


def test_conflicting_figures_are_reported_with_sources(service: QAService) -> None:
    response = service.ask(AskRequest(
        question="How many smugglers were arrested on the northern border?"))
    assert response.answerable
    assert response.conflicts, response.answer
    values = {v.value for v in response.conflicts[0].values}
    assert {"1,200", "2,500"} <= values
    outlets = {c.outlet for c in response.citations}
    assert outlets == {"Alpha Times", "Beta News"}
    _guarantees(service, response)


def test_missing_names_abstain_with_reason(service: QAService) -> None:
    response = service.ask(AskRequest(
        question="How many smugglers did Kazakhstan arrest on the northern border?"))
    assert not response.answerable
    assert response.abstain_reason == "missing_key_terms"
    assert "Kazakhstan" in response.answer
    assert response.passages and not response.citations


def test_unrelated_question_abstains(service: QAService) -> None:
    response = service.ask(AskRequest(question="What is the best recipe for onion soup?"))
    assert not response.answerable
    assert response.abstain_reason in ("no_relevant_passages", "insufficient_support")


def test_filters_limit_evidence(service: QAService) -> None:
    response = service.ask(AskRequest(
        question="How many smugglers were arrested on the northern border?",
        filters=FiltersIn(outlets=["Beta News"])))
    assert {c.outlet for c in response.citations} == {"Beta News"}
    assert not response.conflicts


def test_question_cleaning() -> None:
    assert clean_question("  what\x00 happened\ud800?  ", 100) == "what happened ?"
    with pytest.raises(EmptyQuestion):
        clean_question(" \t\n", 100)
    with pytest.raises(InvalidRequest):
        clean_question("x" * 101, 100)


def test_format_published() -> None:
    assert format_published("2023-01") == "January 2023"
    assert format_published("2022-03-07") == "7 March 2022"
    assert format_published("2020") == "2020"
    assert format_published(None) == "undated"


def test_missing_role_abstains(service: QAService) -> None:
    # The articles name a governor, not a mayor.
    response = service.ask(AskRequest(question="Who is the mayor of the northern border town?"))
    assert not response.answerable
    assert response.abstain_reason == "answer_type_not_found"
    present = service.ask(AskRequest(question="Who is the governor who opened a checkpoint?"))
    assert present.answerable and "Karim Rasulov" in present.answer


def test_acronyms_defined_in_an_article_match_their_long_form(tmp_path: Path) -> None:
    embedder = HashEmbedder(dimension=256)
    text = ("Militant groups in the north\n\nThe Islamic Movement of Uzbekistan (IMU) was once "
            "strong in the valley. Today the IMU has about 200 members, most of them retired "
            "and living with their families.")
    doc = parse_document(text.encode(), name="imu", suffix=".txt", doc_id="imu",
                         metadata={"outlet": "Gamma", "published": "2022"})
    IndexWriter(tmp_path, embedder).apply([doc])
    service = QAService(Settings(data_dir=tmp_path, embedder="hash"), embedder)
    live = service.live()
    assert live.answerer is not None
    table = live.answerer.sentences
    second = table.by_doc["imu"][2]
    assert table.text[second.row].startswith("Today the IMU")
    assert {"islam", "movement", "uzbekistan"} <= table.tokens[second.row]
    response = service.ask(AskRequest(
        question="How many members does the Islamic Movement of Uzbekistan have today?"))
    assert response.answerable and "about 200 members" in response.answer


def test_two_part_question_answers_both_parts(service: QAService) -> None:
    response = service.ask(AskRequest(
        question="Why did the governor open a new checkpoint, and who ran the later survey?"))
    assert response.answerable
    assert "traffic had doubled" in response.answer
    assert "Institute for Border Studies" in response.answer
    _guarantees(service, response)
