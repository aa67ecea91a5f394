"""The answering pipeline with a fake embedder and a scripted reader: decide, compose, verify.

The reader is scripted (it proposes a span that the test chooses) so that these tests pin the
pipeline's own behaviour: offsets, citations, the short answer, conflicts and abstention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from corpus.loader import parse_document
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.retrieve import Passage
from index.store.contract import ChunkRecord
from service.answer.compose import disagreeing, format_published, may_hold
from service.answer.decide import FEATURES, Candidate, Decision, DecisionModel
from service.answer.reader import Reading, Span
from service.config import Settings
from service.core import QAService
from service.schemas import AskRequest, FiltersIn

ARTICLES = {
    "alpha": ("Alpha Times", "2021-05", "Border report from Alpha\n\n"
              "The ministry of defence published its annual review on Monday. The number of "
              "smugglers arrested on the northern border is estimated at 1,200 people. Officials "
              "blamed poverty for the rise in smuggling.\n\nThe governor Karim Rasulov opened a "
              "new checkpoint in March because traffic had doubled."),
    "beta": ("Beta News", "2023-02", "Smuggling update\n\n"
             "A later survey counted about 2,500 smugglers arrested on the northern border in "
             "2022. The survey was run by the Institute for Border Studies. Analysts said the "
             "figures were rising fast."),
    "gamma": ("Gamma Daily", "2023-03", "Second count\n\n"
              "Another tally put the smugglers arrested on the northern border at about 2,500 "
              "in 2022, in line with the survey. Customs officers welcomed the figures."),
}


class ScriptedReader:
    """Proposes the first match of ``pattern`` in each passage (margin 5), else no answer."""

    def __init__(self, pattern: str = r"\d[\d,]*") -> None:
        self.pattern = re.compile(pattern)
        self.calls: list[tuple[str, int]] = []

    def read(self, question: str, passages: Sequence[str], top_n: int = 3,
             max_answer_words: int = 30) -> list[Reading]:
        self.calls.append((question, len(passages)))
        out = []
        for i, text in enumerate(passages):
            match = self.pattern.search(text)
            spans = [Span(i, match.start(), match.end(), match.group(), 8.0)] if match else []
            out.append(Reading(i, 3.0 if match else 9.0, spans))
        return out


def margin_model(threshold: float) -> DecisionModel:
    """Confidence = sigmoid(margin): a transparent stand-in for the fitted model."""
    weights = tuple(1.0 if name == "margin" else 0.0 for name in FEATURES)
    zeros = tuple(0.0 for _ in FEATURES)
    return DecisionModel(weights, 0.0, zeros, tuple(1.0 for _ in FEATURES), threshold)


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    embedder = HashEmbedder(dimension=256)
    docs = [parse_document(text.encode(), name=doc_id, suffix=".txt", doc_id=doc_id,
                           metadata={"outlet": outlet, "published": published})
            for doc_id, (outlet, published, text) in ARTICLES.items()]
    IndexWriter(tmp_path, embedder).apply(docs)
    return tmp_path


def make_service(index_dir: Path, reader: ScriptedReader, threshold: float = 0.5) -> QAService:
    return QAService(Settings(data_dir=index_dir, embedder="hash"), HashEmbedder(dimension=256),
                     reader=reader,  # type: ignore[arg-type]
                     decision_model=margin_model(threshold))


def guarantees(service: QAService, response) -> None:  # type: ignore[no-untyped-def]
    """The contract every answer keeps."""
    ids = {c.id for c in response.citations}
    assert {int(m) for m in re.findall(r"\[(\d+)\]", response.answer)} <= ids
    for citation in response.citations:
        text = service.get_document(citation.doc_id).text
        assert citation.quote == text[citation.source_span.start:citation.source_span.end]
    for sentence in response.sentences:
        assert response.answer[sentence.start:sentence.end].endswith(
            f"[{sentence.citations[0].id}]")
    if response.short_answer is not None:
        short = response.short_answer
        cited = next(c for c in response.citations if c.id == short.citation)
        text = service.get_document(cited.doc_id).text
        assert text[short.source_span.start:short.source_span.end] == short.text
        assert cited.source_span.start <= short.source_span.start
        assert short.source_span.end <= cited.source_span.end
        assert response.answer.startswith(short.text)


def test_short_answer_leads_and_sits_inside_its_quote(index_dir: Path) -> None:
    service = make_service(index_dir, ScriptedReader(r"because traffic had doubled"))
    response = service.ask(AskRequest(question="Why did the governor open a new checkpoint?"))
    assert response.answerable, response.answer
    assert response.short_answer is not None
    assert response.short_answer.text == "because traffic had doubled"
    assert response.confidence is not None and response.confidence >= 0.5
    quote = response.citations[0].quote
    assert quote.startswith("The governor Karim Rasulov opened")  # one sentence, not the chunk
    assert "Alpha Times (May 2021) reports:" in response.answer
    assert all(s.citations[0].support.label == "supported" for s in response.sentences)
    # An extractive sentence is the quote itself: the label says so rather than judging it.
    assert all(s.citations[0].support.basis == "verbatim" for s in response.sentences)
    guarantees(service, response)


def test_articles_that_agree_are_quoted_and_disagreeing_figures_reported(
        index_dir: Path) -> None:
    service = make_service(index_dir, ScriptedReader())
    response = service.ask(AskRequest(
        question="How many smugglers were arrested on the northern border?", top_k=3))
    assert response.answerable
    guarantees(service, response)
    docs = [c.doc_id for c in response.citations]
    assert len(docs) == len(set(docs)), "one citation per article"
    if response.conflicts:
        values = {v.value for v in response.conflicts[0].values}
        assert len(values) == 2 and any("1,200" in v for v in values)


def test_other_articles_are_read_after_the_decision_for_agreement_and_conflicts(
        index_dir: Path) -> None:
    reader = ScriptedReader()
    service = QAService(Settings(data_dir=index_dir, embedder="hash", read_passages=1),
                        HashEmbedder(dimension=256), reader=reader,  # type: ignore[arg-type]
                        decision_model=margin_model(0.5))
    response = service.ask(AskRequest(
        question="How many smugglers were arrested on the northern border?", top_k=3))
    assert response.answerable
    guarantees(service, response)
    # The decision read one passage; the other two articles were read afterwards.
    assert [n for _, n in reader.calls] == [1, 2]
    assert len({c.doc_id for c in response.citations}) >= 2
    assert response.conflicts
    assert {"1,200", "2,500"} <= {v.value for v in response.conflicts[0].values}


def test_low_confidence_abstains_with_passages_and_reason(index_dir: Path) -> None:
    service = make_service(index_dir, ScriptedReader(), threshold=0.999)
    response = service.ask(AskRequest(question="How many smugglers were arrested?"))
    assert not response.answerable
    assert response.abstain_reason == "insufficient_support"
    assert response.short_answer is None and response.citations == []
    assert response.passages, "an abstention still returns the nearest passages"
    assert response.confidence is not None and response.confidence < 0.999
    # A request may lower the bar below the calibrated threshold.
    lowered = service.ask(AskRequest(question="How many smugglers were arrested?",
                                     min_confidence=0.5))
    assert lowered.answerable


def test_no_span_anywhere_abstains(index_dir: Path) -> None:
    service = make_service(index_dir, ScriptedReader(r"zebra crossing"))
    response = service.ask(AskRequest(question="Where do zebras cross?"))
    assert not response.answerable and response.short_answer is None


def test_missing_names_are_named_in_the_abstention(index_dir: Path) -> None:
    service = make_service(index_dir, ScriptedReader(), threshold=0.999)
    response = service.ask(AskRequest(question="How many smugglers did Vladimir Petrov arrest?"))
    assert not response.answerable
    assert response.abstain_reason == "missing_key_terms"
    assert "Vladimir Petrov" in response.answer or "Petrov" in response.answer


def test_filters_limit_what_is_read(index_dir: Path) -> None:
    reader = ScriptedReader()
    service = make_service(index_dir, reader)
    response = service.ask(AskRequest(question="How many smugglers were arrested?",
                                      filters=FiltersIn(outlets=["Beta News"])))
    assert {c.doc_id for c in response.citations} <= {"beta"}
    assert reader.calls[-1][1] >= 1


def test_decision_model_round_trips_and_refuses_other_features() -> None:
    model = margin_model(0.4)
    again = DecisionModel.from_json(model.to_json())
    values = dict.fromkeys(FEATURES, 0.0) | {"margin": 2.0}
    assert again.confidence(values) == pytest.approx(model.confidence(values))
    with pytest.raises(ValueError):
        DecisionModel.from_json(model.to_json() | {"features": ["margin"]})


def test_packaged_decision_model_names_its_data() -> None:
    model = DecisionModel.load()
    assert 0.0 < model.threshold < 1.0
    fitted = model.meta["fitted"]
    assert "squad" in fitted["data"] and "newsqa" in fitted["data"]
    assert fitted["metrics"]["questions"] > 100


def test_format_published() -> None:
    assert format_published("2023-01") == "January 2023"
    assert format_published("2022-03-07") == "7 March 2022"
    assert format_published(None) == "undated"


def test_other_articles_that_cannot_hold_the_answer_are_not_read(tmp_path: Path) -> None:
    embedder = HashEmbedder(dimension=256)
    articles = {**ARTICLES, "delta": ("Delta Post", "2023-04", "Border talk\n\n"
                                      "Officials discussed the border this week without "
                                      "giving a count.")}
    docs = [parse_document(text.encode(), name=doc_id, suffix=".txt", doc_id=doc_id,
                           metadata={"outlet": outlet, "published": published})
            for doc_id, (outlet, published, text) in articles.items()]
    IndexWriter(tmp_path, embedder).apply(docs)
    reader = ScriptedReader()
    service = QAService(Settings(data_dir=tmp_path, embedder="hash", read_passages=1),
                        embedder, reader=reader,  # type: ignore[arg-type]
                        decision_model=margin_model(0.5))
    response = service.ask(AskRequest(
        question="How many smugglers were arrested on the northern border?", top_k=4))
    assert response.answerable
    guarantees(service, response)
    first_of = {}
    for p in response.passages[1:]:
        first_of.setdefault(p.doc_id, p.text)
    first_of.pop(response.passages[0].doc_id, None)
    assert "delta" in first_of, "the article without a figure is retrieved"
    # A figure was asked for: only the other articles whose passage has a number are read.
    assert [n for _, n in reader.calls] == [
        1, sum(1 for text in first_of.values() if re.search(r"\d", text))]
    assert "delta" not in {c.doc_id for c in response.citations}


def test_a_passage_may_hold_the_answer_only_with_a_figure_or_one_of_its_words() -> None:
    assert may_hold("1,200 people", "about 2,500 were counted")
    assert not may_hold("1,200 people", "no count was given")
    assert may_hold("Karim Rasulov", "The governor, Mr Rasulov, said so.")
    assert may_hold("Céloron", "Celoron's expedition")  # folded
    assert not may_hold("the governor", "Customs officers welcomed the figures.")
    assert may_hold("the", "anything at all")  # no word to look for: read it


def test_only_figures_of_one_kind_are_reported_as_differing() -> None:
    def candidate(text: str, doc_id: str) -> Candidate:
        chunk = ChunkRecord(0, f"{doc_id}-0", doc_id, 0, len(text), text, 10, "T", "O", None)
        return Candidate(Passage(chunk, 1.0, 0.5, 1.0, 0), Span(0, 0, len(text), text, 8.0), 3.0)

    best = candidate("22%", "a")
    decision = Decision(True, 0.9, best, [best, candidate("6,500", "b")])
    assert disagreeing(decision) is None  # a share against a count
    decision.others = [candidate("35%", "c")]
    rival = disagreeing(decision)
    assert rival is not None and rival.span.text == "35%"
