"""The SQuAD-format evaluation: corpus building, dropping a third, scoring, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.squad_qa import (
    Scored,
    SquadReport,
    aggregate,
    build_set,
    dropped,
    load_contexts,
    operating_points,
    reliability,
    run,
    write_corpus,
)


def squad_file(tmp_path: Path, paragraphs: int = 9) -> Path:
    data = {"version": "v2.0", "data": [{"title": "Rivers", "paragraphs": [
        {"context": f"The river number {i} flows for {100 + i} kilometres to the sea.",
         "qas": [{"id": f"q{i}", "question": f"How long is river number {i}?",
                  "answers": [{"text": f"{100 + i} kilometres", "answer_start": 30}],
                  "is_impossible": False},
                 {"id": f"x{i}", "question": f"Who named river {i}?", "answers": [],
                  "is_impossible": True}]}
        for i in range(paragraphs)]}]}
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(data))
    return path


class EchoClient:
    """Answers with the gold span when the question's context is in the corpus."""

    def __init__(self, corpus: dict[str, str]) -> None:
        self.corpus = corpus

    def ask(self, question: str, top_k: int) -> dict[str, Any]:
        number = question.rstrip("?").split()[-1]
        doc = next((d for d, t in self.corpus.items() if f"number {number} " in t), None)
        if doc is None or not question.startswith("How long"):
            return {"answerable": False, "answer": "no", "confidence": 0.1, "citations": [],
                    "abstain_reason": "insufficient_support"}
        text = self.corpus[doc]
        start = text.index("flows for ") + len("flows for ")
        short = text[start:text.index(" to the sea")]
        return {"answerable": True, "answer": f"{short} [1]\n{text} [1]", "confidence": 0.9,
                "short_answer": {"text": short, "citation": 1,
                                 "source_span": {"start": start, "end": start + len(short)}},
                "citations": [{"id": 1, "doc_id": doc, "quote": text,
                               "source_span": {"start": 0, "end": len(text)}}]}

    def document_text(self, doc_id: str) -> str:
        return self.corpus[doc_id]


def test_drop_third_makes_questions_unanswerable(tmp_path: Path) -> None:
    contexts = load_contexts(squad_file(tmp_path))
    full = build_set(contexts, drop_third=False)
    cut = build_set(contexts, drop_third=True)
    assert len(full.corpus) == 9 and len(full.questions) == 18
    assert cut.dropped == sum(dropped(c) for c in contexts) and 0 < cut.dropped < 9
    assert len(cut.corpus) == 9 - cut.dropped
    kinds = {q.kind for q in cut.questions}
    assert kinds == {"answerable", "impossible", "dropped"}
    assert all(not q.answerable for q in cut.questions if q.kind != "answerable")


def test_scores_short_answers_abstention_and_citations(tmp_path: Path) -> None:
    squad_set = build_set(load_contexts(squad_file(tmp_path)), drop_third=True)
    client = EchoClient({c.doc_id: c.text for c in squad_set.corpus})
    results = run(squad_set, client)
    metrics = aggregate(results)
    assert metrics["short_answer_em"] == pytest.approx(1.0)
    assert metrics["short_answer_f1"] == pytest.approx(1.0)
    assert metrics["abstention_balanced_accuracy"] == pytest.approx(1.0)
    assert metrics["citation_validity"] == pytest.approx(1.0)
    table = reliability(results)
    assert sum(row["count"] for row in table) == len(results)
    report = SquadReport("sample", {"min_confidence": 0.5}, metrics, table, results)
    markdown = report.write(tmp_path / "report")
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 1000
    assert "short_answer_f1" in markdown.read_text()


def _scored(qid: str, golds: list[str], answered: bool, confidence: float, f1: float) -> Scored:
    return Scored(qid, "Q?", "answerable" if golds else "dropped", golds, answered,
                  "x" if answered else "", confidence, f1, f1, answered, True, 10.0)


def test_operating_points_rescore_the_run_at_higher_thresholds_only(tmp_path: Path) -> None:
    results = [_scored("a", ["g"], True, 0.9, 1.0), _scored("b", ["g"], True, 0.3, 0.5),
               _scored("c", [], True, 0.6, 0.0), _scored("d", [], False, 0.1, 0.0)]
    points = {p["min_confidence"]: p for p in operating_points(results, 0.2)}
    assert min(points) == 0.2 and 0.15 not in points  # below the run's threshold is unknown
    assert points[0.2]["abstention_balanced_accuracy"] == pytest.approx(0.75)
    assert points[0.2]["short_answer_f1"] == pytest.approx(0.75)
    assert points[0.35]["answer_rate_answerable"] == pytest.approx(0.5)
    assert points[0.35]["short_answer_f1"] == pytest.approx(0.5)
    assert points[0.65]["abstain_rate_unanswerable"] == pytest.approx(1.0)
    assert points[0.65]["abstention_balanced_accuracy"] == pytest.approx(0.75)
    assert points[0.65]["precision_of_answers"] == pytest.approx(1.0)
    assert operating_points(results, None) == []
    report = SquadReport("sample", {"min_confidence": 0.2}, aggregate(results),
                         reliability(results), results, operating_points(results, 0.2))
    text = report.write(tmp_path / "report").read_text()
    assert "| 0.650 | 0.500 | 0.750 | 0.500 | 1.000 | 1.000 |" in text
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["operating_points"][0]["min_confidence"] == 0.2
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Other min_confidence values" in page and "0.650" in page


def test_a_wrong_citation_is_caught(tmp_path: Path) -> None:
    squad_set = build_set(load_contexts(squad_file(tmp_path, 3)), drop_third=False)
    corpus = {c.doc_id: c.text for c in squad_set.corpus}
    client = EchoClient(corpus)
    bad = dict(corpus)
    first = next(iter(bad))
    bad[first] = "X" + bad[first]  # the served text no longer matches the quote offsets
    client.document_text = lambda doc_id: bad[doc_id]  # type: ignore[method-assign]
    results = run(squad_set, client)
    assert aggregate(results)["citation_validity"] < 1.0


def test_written_corpus_is_what_ingest_reads(tmp_path: Path) -> None:
    from corpus.loader import load_paths

    squad_set = build_set(load_contexts(squad_file(tmp_path, 4)), drop_third=False)
    write_corpus(squad_set, tmp_path / "corpus", outlet="Wikipedia")
    report = load_paths([tmp_path / "corpus"])
    assert not report.skipped
    assert {d.doc_id for d in report.documents} == {c.doc_id for c in squad_set.corpus}
    assert all(d.outlet == "Wikipedia" and d.title == "Rivers" for d in report.documents)


def mrqa_file(tmp_path: Path, gz: bool = False) -> Path:
    import gzip

    rows = [{"header": {"dataset": "TriviaQA", "split": "dev"}},
            {"id": "ctx-1", "context": "[DOC] [TLE] River Lune [PAR] The river number 1 flows "
                                       "for 101 kilometres to the sea.",
             "qas": [{"qid": "t1", "question": "How long is river number 1?",
                      "answers": ["101 kilometres", "101 km"]}]},
            {"id": "ctx-2", "context": "The river number 2 flows for 102 kilometres.",
             "qas": [{"qid": "t2", "question": "How long is river number 2?",
                      "answers": ["102 kilometres"]}, {"qid": "t3", "question": "  "}]}]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    path = tmp_path / ("dev.jsonl.gz" if gz else "dev.jsonl")
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_mrqa_json_lines_become_contexts_with_plain_text(tmp_path: Path, gz: bool) -> None:
    contexts = load_contexts(mrqa_file(tmp_path, gz))
    assert [c.key for c in contexts] == ["mrqa:ctx-1", "mrqa:ctx-2"]
    first = contexts[0]
    assert first.title == "River Lune"
    assert "[" not in first.text and first.text.startswith("River Lune\n\nThe river number 1")
    assert contexts[1].title == "TriviaQA 2"
    squad_set = build_set(contexts, drop_third=False)
    assert [(q.qid, q.answers) for q in squad_set.questions] == [
        ("t1", ("101 kilometres", "101 km")), ("t2", ("102 kilometres",))]
    assert all(a in first.text for a in squad_set.questions[0].answers[:1])


def test_mrqa_rows_that_are_not_mrqa_are_refused_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"header": {}}\n{"context": "x"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_contexts(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        load_contexts(bad)


def test_cli_writes_an_mrqa_corpus_and_refuses_training_subsets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eval.cli import app

    path = mrqa_file(tmp_path)
    out = tmp_path / "corpus"
    result = CliRunner().invoke(app, ["qa", "--squad", str(path), "--write-corpus", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.txt"))) == 2 and (out / "manifest.json").is_file()
    result = CliRunner().invoke(app, ["qa", "--squad", str(path), "--subset", "squad-fold-b"])
    assert result.exit_code != 0
    assert "use --subset all with an MRQA file" in result.output
    assert "Traceback" not in result.output
