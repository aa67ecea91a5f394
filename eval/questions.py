"""Question files for `groundqa eval qa`: JSON lines of ``{id, question, answerable, answers,
gold_doc_ids, gold_quotes, type, notes}``, validated line by line with errors that name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.jsonl import json_lines

QUESTION_TYPES = ("factoid", "paraphrase", "multi_doc", "conflict", "unanswerable", "near_miss")


class QuestionFileError(ValueError):
    """A question file that is missing or malformed; the message names the line."""


@dataclass(frozen=True)
class Question:
    """One evaluation question and its gold annotations."""

    id: str
    question: str
    answerable: bool
    answers: tuple[str, ...] = ()
    gold_doc_ids: tuple[str, ...] = ()
    gold_quotes: tuple[str, ...] = ()
    type: str = "unspecified"
    notes: str = ""


def _string_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QuestionFileError(f"{where}: '{name}' must be a list of strings")
    return tuple(value)


def parse_question(data: Any, where: str) -> Question:
    """Validate one decoded JSON line; ``where`` ("file:line") prefixes any error."""
    if not isinstance(data, dict):
        raise QuestionFileError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key, kind in (("id", str), ("question", str), ("answerable", bool)):
        if key not in data:
            raise QuestionFileError(f"{where}: missing required field '{key}'")
        if not isinstance(data[key], kind):
            raise QuestionFileError(f"{where}: '{key}' must be a {kind.__name__}")
    if not data["question"].strip():
        raise QuestionFileError(f"{where}: 'question' is empty")
    answers = _string_list(data.get("answers"), "answers", where)
    if data["answerable"] and not any(a.strip() for a in answers):
        raise QuestionFileError(f"{where}: answerable question needs at least one 'answers' entry")
    qtype = data.get("type", "unspecified")
    if not isinstance(qtype, str) or not qtype:
        raise QuestionFileError(f"{where}: 'type' must be a non-empty string")
    notes = data.get("notes", "")
    return Question(
        id=data["id"],
        question=data["question"],
        answerable=data["answerable"],
        answers=answers,
        gold_doc_ids=_string_list(data.get("gold_doc_ids"), "gold_doc_ids", where),
        gold_quotes=_string_list(data.get("gold_quotes"), "gold_quotes", where),
        type=qtype,
        notes=notes if isinstance(notes, str) else str(notes),
    )


def load_questions(path: str | Path) -> list[Question]:
    """Read a JSON-lines question file (blank lines skipped); raise QuestionFileError if bad."""
    path = Path(path)
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such file")
    questions: list[Question] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise QuestionFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    for lineno, data in json_lines(lines, lambda n: f"{path}:{n}", QuestionFileError):
        where = f"{path}:{lineno}"
        question = parse_question(data, where)
        if question.id in seen:
            raise QuestionFileError(f"{where}: duplicate id '{question.id}'")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return questions
