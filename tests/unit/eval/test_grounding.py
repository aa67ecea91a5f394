"""`groundqa eval grounding`: any system's cited answers judged sentence by sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import app
from eval.grounding import AnswersFileError, evaluate_answers, read_answers

QUOTE = ("About 4,000 fighters have gathered near the northern border of Veldania, a regional "
         "security commander said on Tuesday.")
ROWS = [
    {"question": "How many fighters are at the border?",
     "answer": "Here is a short summary:\n1. About 4,000 fighters have gathered near the "
               "northern border of Veldania [1].\n2. They number about one million [1].\n"
               "3. The border is closed.",
     "citations": [{"id": 1, "text": QUOTE}]},
]


def write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sentences_are_labelled_and_scored(tmp_path: Path) -> None:
    result = evaluate_answers(read_answers(write(tmp_path, ROWS)))
    labels = [s["label"] for s in result["per_answer"][0]["sentences"]]
    assert labels == ["framing", "supported", "unsupported", "unsupported"]
    assert result["sentences"] == 3 and result["groundedness"] == pytest.approx(1 / 3)
    assert result["citation_recall"] == pytest.approx(1 / 2)  # of the two cited sentences
    assert result["citation_precision"] == pytest.approx(1 / 2)


def test_cli_writes_the_html_view_and_refuses_bad_files(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "report"
    done = runner.invoke(app, ["grounding", "--answers", str(write(tmp_path, ROWS)),
                               "--report-dir", str(out)])
    assert done.exit_code == 0, done.output
    page = (out / "report.html").read_text()
    assert "class='s unsupported'" in page and "one million" in page
    assert len((out / "sentences.jsonl").read_text().splitlines()) == 4

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "x"}\nnot json\n')
    with pytest.raises(AnswersFileError, match="bad.jsonl:2"):
        read_answers(bad)
    refused = runner.invoke(app, ["grounding", "--answers", str(bad)])
    assert refused.exit_code == 2 and "bad.jsonl:2" in refused.output


def test_a_source_attribution_lead_is_not_judged_but_the_statement_after_it_is() -> None:
    quote = "The harbour authority said the repair work on the breakwater cost 12 million euros."
    rows = [{"question": "How much?", "citations": [{"id": 1, "text": quote}],
             "answer": "Coastal Ledger (12 March 2024) reports: The harbour authority said the "
                       "repair work on the breakwater cost 12 million euros. [1] Coastal Ledger "
                       "(12 March 2024) reports: The harbour authority said the repair work on "
                       "the breakwater cost 95 million euros. [1]"}]
    sentences = evaluate_answers(rows)["per_answer"][0]["sentences"]
    assert [s["label"] for s in sentences] == ["supported", "unsupported"]
    assert not any("Coastal Ledger" in r or "2024" in r for r in sentences[0]["reasons"])
