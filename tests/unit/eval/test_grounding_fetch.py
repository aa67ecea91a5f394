"""Answers fetched from a chat API for `groundqa eval grounding --chat-url`: reading replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import app
from eval.grounding_fetch import QuestionsFileError, answer_row, read_questions, split_sources


def test_a_trailing_sources_list_gives_the_citations_and_the_answer_is_what_precedes_it() -> None:
    content = ("The harbour reopened on Tuesday [1]. Repairs cost 12 million euros [2][3].\n\n"
               "**Sources**\n\n"
               "- [1] The Lakeside harbour reopened on Tuesday after eight months.\n"
               "- [2], [3]: The work cost 12 million euros.\n"
               "not an entry\n")
    answer, citations = split_sources(content)
    assert answer == "The harbour reopened on Tuesday [1]. Repairs cost 12 million euros [2][3]."
    assert citations == [
        {"id": "1", "text": "The Lakeside harbour reopened on Tuesday after eight months."},
        {"id": "2", "text": "The work cost 12 million euros."},
        {"id": "3", "text": "The work cost 12 million euros."}]


@pytest.mark.parametrize("heading", ["Sources:", "## References", "CITATIONS", "__Sources__"])
def test_common_headings_and_numbered_entries_are_read(heading: str) -> None:
    answer, citations = split_sources(f"It rained [a].\n{heading}\n1. [a] Rain fell all day.")
    assert answer == "It rained [a]."
    assert citations == [{"id": "a", "text": "Rain fell all day."}]


def test_a_reply_without_a_sources_list_is_all_answer() -> None:
    content = "Sources say it rained [1], but no list follows.\nThe end."
    assert split_sources(content) == (content, [])
    # A heading with no entries under it is part of the answer too.
    assert split_sources("Answer.\nSources\nnone given") == ("Answer.\nSources\nnone given", [])


def test_groundqa_replies_give_the_plain_answer_and_the_verbatim_quotes() -> None:
    completion = {"choices": [{"message": {"content": "**12 million euros** [1]\n\n**Sources**"
                                                      "\n\n- [1] Coastal Ledger"}}],
                  "groundqa": {"answer": "12 million euros [1]", "citations": [
                      {"id": 1, "quote": "The work cost 12 million euros."}]}}
    assert answer_row("How much?", completion) == {
        "question": "How much?", "answer": "12 million euros [1]",
        "citations": [{"id": "1", "text": "The work cost 12 million euros."}]}


def test_questions_come_from_json_lines_or_plain_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": "a", "question": "Why?"}\n\n{"question": "When?"}\n')
    assert read_questions(jsonl) == ["Why?", "When?"]
    text = tmp_path / "q.txt"
    text.write_text("Why did it rain?\n  \nWhen did it stop?\n")
    assert read_questions(text) == ["Why did it rain?", "When did it stop?"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{"query": "no"}\n')
    with pytest.raises(QuestionsFileError, match="bad.jsonl:2"):
        read_questions(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(QuestionsFileError, match="no questions"):
        read_questions(empty)


def test_an_error_names_the_line_of_the_file_even_after_blank_lines(tmp_path: Path) -> None:
    gaps = tmp_path / "gaps.jsonl"
    gaps.write_text('{"question": "ok"}\n\n\n{"question": ""}\n')
    with pytest.raises(QuestionsFileError, match=r"gaps.jsonl:4: needs a non-empty"):
        read_questions(gaps)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "ok"}\n\n{"question": \n')
    with pytest.raises(QuestionsFileError, match=r"broken.jsonl:3: not JSON"):
        read_questions(broken)


def test_the_cli_wants_one_source_of_answers_and_says_so_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    questions = tmp_path / "q.txt"
    questions.write_text("Why?\n")
    for args in (["grounding"], ["grounding", "--answers", str(questions), "--chat-url", "x"],
                 ["grounding", "--chat-url", "http://127.0.0.1:9/v1"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, done.output
        assert done.output.strip().startswith("error:") and done.output.count("\n") == 1
    unreachable = runner.invoke(app, ["grounding", "--chat-url", "http://127.0.0.1:9/v1",
                                      "--questions", str(questions), "--model", "m"])
    assert unreachable.exit_code == 2
    assert unreachable.output.startswith("error: cannot reach http://127.0.0.1:9/v1")
