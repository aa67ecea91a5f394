"""The HTML evaluation reports: written beside report.json/.md, escaped, one row per question."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import eval.clients as clients_module
import eval.qa as qa_module
from eval.checker import run_checker_eval
from eval.cli import app
from eval.html_report import HtmlReport, Raw, reliability_bins
from eval.qa import run_qa_eval
from eval.retrieval import run_retrieval_eval
from eval.squad_qa import Scored, SquadReport, reliability
from tests.unit.eval.test_qa import QUESTIONS, RESPONSES, FakeChecker, FakeClient

#: Markup an article, a dataset or a model could put in a question, an answer or a quote.
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HOSTILE_QUESTION = f"Which {HOSTILE} is it?"


class Page(HTMLParser):
    """Tags, table rows of the per-question table, inline images and visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._in_questions = False
        self._in_body = False
        self._row: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "table":
            self._in_questions = values.get("class") == "questions"
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_questions and self._in_body:
            self._row = []
        if tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row:
            self._row[-1] += data


def check_page(path: Path, rows: int) -> Page:
    """report.html exists, has no tag from the data, three PNG figures and ``rows`` rows."""
    assert path.is_file()
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    # No markup from the data became a tag: the only images are the three figures
    # (reliability, scores by type, latency), inline PNGs.
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert len(page.images) == 3
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert len(page.rows) == rows
    return page


def test_html_report_escapes_text_and_raw_is_only_for_its_own_markup(tmp_path: Path) -> None:
    page = HtmlReport(f"title {HOSTILE}")
    page.paragraph(HOSTILE)
    page.table(["a", f"<b>{HOSTILE}</b>"], [[HOSTILE, 0.5, None, Raw("<em>own</em>")]],
               css="questions")
    html = page.write(tmp_path / "r.html").read_text()
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<em>own</em>" in html and '<td class="num">0.500</td>' in html


def test_reliability_bins() -> None:
    bins = reliability_bins([0.05, 0.07, 0.95, 1.0], [False, True, True, True])
    assert bins[0]["count"] == 2 and bins[0]["accuracy"] == 0.5
    assert bins[-1]["count"] == 2 and bins[-1]["accuracy"] == 1.0
    assert bins[5]["count"] == 0


# ------------------------------------------------------------------ groundqa eval qa


@pytest.fixture
def hostile_questions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake QA set plus a question whose answer and quote carry markup."""
    quote = f"The figure {HOSTILE} was 6.5 thousand."
    monkeypatch.setitem(RESPONSES, HOSTILE_QUESTION, {
        "answerable": True, "confidence": 0.9,
        "answer": f"It was {HOSTILE} 6.5 thousand [1].",
        "sentences": [{"start": 0, "end": 10, "citations": [{"id": 1}]}],
        "citations": [{"id": 1, "doc_id": "d1", "outlet": "<i>Outlet</i>", "title": "T",
                       "published": "2023-01", "quote": quote,
                       "source_span": {"start": 0, "end": len(quote)}}],
        "passages": [{"doc_id": "d1", "chunk_id": "d1#0", "text": "", "score": 1.0}]})
    rows = [*QUESTIONS, {"id": "t6", "question": HOSTILE_QUESTION, "answerable": True,
                         "answers": ["6.5 thousand"], "gold_doc_ids": ["d1"], "type": "factoid"}]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_qa_report_html_has_a_row_per_question_escaped(hostile_questions: Path,
                                                       tmp_path: Path) -> None:
    report = run_qa_eval(hostile_questions, FakeClient(), tmp_path / "out",
                         checker=FakeChecker())
    assert report.html_path == tmp_path / "out" / "report.html"
    assert (tmp_path / "out" / "report.json").is_file()
    page = check_page(report.html_path, rows=6)
    html = report.html_path.read_text()
    assert "&lt;script&gt;" in html and "&lt;i&gt;Outlet&lt;/i&gt;" in html
    by_id = {row[0]: row for row in page.rows}
    assert set(by_id) == {"t1", "t2", "t3", "t4", "t5", "t6"}
    # id, type, question, answer, citations, confidence, ms, verdict
    assert by_id["t6"][2] == HOSTILE_QUESTION
    assert HOSTILE in by_id["t6"][3] and "[1] <i>Outlet</i>, 2023-01" in by_id["t6"][4]
    assert by_id["t6"][5] == "0.900"
    assert by_id["t1"][7].startswith("right")
    assert by_id["t3"][7].startswith("abstained, but answerable")
    assert by_id["t4"][7].startswith("abstained (right)")
    assert by_id["t5"][7].startswith("answered, should abstain")
    assert "answered a question the articles cannot answer" in by_id["t5"][7]


def test_cli_qa_writes_the_html_report(monkeypatch: pytest.MonkeyPatch,
                                       hostile_questions: Path, tmp_path: Path) -> None:
    monkeypatch.setattr(clients_module, "InProcessAskClient", lambda data_dir: FakeClient())
    monkeypatch.setattr(qa_module, "default_checker", FakeChecker)
    result = CliRunner().invoke(app, ["qa", "--questions", str(hostile_questions),
                                      "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.stdout
    check_page(tmp_path / "r" / "report.html", rows=6)


# ------------------------------------------------------------------ groundqa eval qa --squad


def test_squad_report_html(tmp_path: Path) -> None:
    results = [
        Scored("q1", HOSTILE_QUESTION, "squad", [f"gold {HOSTILE}"], True, f"said {HOSTILE}",
               0.8, 1.0, 1.0, True, True, 120.0, answer=f"said {HOSTILE} [1]",
               citations=[{"id": 1, "outlet": "O", "published": None, "quote": HOSTILE}]),
        Scored("q2", "Unanswerable?", "squad", [], False, "", 0.1, 0.0, 0.0, False, True, 80.0,
               abstain_reason="insufficient_support"),
        Scored("q3", "Wrong?", "newsqa", ["x"], True, "y", 0.6, 0.0, 0.0, False, True, 95.0),
    ]
    report = SquadReport("sample", {"min_confidence": 0.3}, {"f1": 0.5}, reliability(results),
                         results)
    report.write(tmp_path)
    page = check_page(tmp_path / "report.html", rows=3)
    assert (tmp_path / "report.md").is_file() and (tmp_path / "reliability.png").is_file()
    verdicts = {row[0]: row[-1] for row in page.rows}
    assert verdicts == {"q1": "right", "q2": "abstained (right)", "q3": "wrong"}
    assert page.rows[0][5] == f"[1] O — “{HOSTILE}”"


# ------------------------------------------------------------------ groundqa eval retrieval


def write_beir(folder: Path) -> Path:
    docs = {"a": ("Border <b>posts</b>", "Guards opened three border posts in the mountains."),
            "b": ("Grain", "The harvest of wheat and barley grew by a tenth this year."),
            "c": ("Rail", "A new railway line links the two capitals since spring.")}
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items()))
    queries = {"q1": f"border posts {HOSTILE}", "q2": "wheat harvest", "q3": "railway line"}
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\n"
                                               "q2\tb\t1\nq3\tc\t1\n")
    return folder


def test_retrieval_report_html(tmp_path: Path) -> None:
    report = run_retrieval_eval(write_beir(tmp_path / "tiny"), ["bm25"], tmp_path / "out",
                                measure_encode=False, embedder_kind="hash")
    assert report["results"][0]["test"]["ndcg@10"] > 0
    page = check_page(tmp_path / "out" / "report.html", rows=3)
    by_id = {row[0]: row for row in page.rows}
    assert by_id["q1"][1] == f"border posts {HOSTILE}"
    assert by_id["q2"][2].startswith("b ✓ — Grain")  # retrieved, relevant marked
    assert "Border <b>posts</b>" in by_id["q1"][3]  # the relevant document's title, as text
    assert all(row[-1] in ("relevant first", "relevant in top 10", "missed")
               for row in page.rows)


# ------------------------------------------------------------------ groundqa eval checker


def test_checker_report_html(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"label": "supported", "supporting_sentences": "[[0]]",
         "claim": f"The plant employs 6,500 people {HOSTILE}.",
         "evidence": str(["The plant employs 6,500 people.", "It opened in 1990."]), "meta": {}},
        {"label": "not_supported", "supporting_sentences": "[]",
         "claim": "The plant closed in March.",
         "evidence": str(["The plant remained open through March."]), "meta": {}},
    ]
    wice = tmp_path / "claim-test.jsonl"
    wice.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_checker_eval(wice, None, tmp_path / "out", use_model=False)
    assert (tmp_path / "out" / "report.md").is_file()
    page = check_page(tmp_path / "out" / "report.html", rows=2)
    claim, quotes, gold, label, score, _, verdict = page.rows[0]
    assert claim == rows[0]["claim"] and quotes.startswith("The plant employs 6,500 people.")
    assert gold == "supported (supported)" and label in ("supported", "partial", "unsupported")
    assert 0.0 <= float(score) <= 1.0 and verdict.split(":")[0] in ("right", "wrong")
