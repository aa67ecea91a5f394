"""Answers for a grounding evaluation, fetched from any OpenAI-compatible chat endpoint.

`groundqa eval grounding --chat-url URL --questions FILE` sends every question as one user
message through the official ``openai`` client and turns each reply into a row of the answers
file (``{question, answer, citations: [{id, text}]}``) that ``eval/grounding.py`` judges:

* a reply that carries groundqa's ``groundqa`` extension field gives its answer text and the
  verbatim quote of each citation;
* any other reply is its message content: a trailing list headed "Sources", "References" or
  "Citations" whose entries start with ``[id]`` gives each id's text (the rest of the entry),
  and the content before that list is the answer. A system that lists only titles or links is
  judged against those, and scores accordingly: export its quotes to an answers file instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.jsonl import json_lines

_HEADING = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?(?:sources|references|citations)(?:\*\*|__)?[ \t]*:?"
    r"[ \t]*(?:\*\*|__)?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_MARKER = re.compile(r"\[([^\[\]\s]{1,20})\]")
_ENTRY = re.compile(r"^[ \t]*(?:[-*+][ \t]+|\d+[.)][ \t]+)?((?:\[[^\[\]\s]{1,20}\][ \t]*,?[ \t]*)+)"
                    r":?[ \t]*(.*\S)[ \t]*$")


class QuestionsFileError(ValueError):
    """The questions file is missing, empty or not in a layout this command reads."""


class ChatFetchError(RuntimeError):
    """The chat endpoint could not be reached or refused a request (one line, for the CLI)."""


def read_questions(path: Path) -> list[str]:
    """Questions from JSON lines with a ``question`` field (groundqa's question files), or from
    plain text with one question per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionsFileError(f"{path}: cannot read it ({exc})") from exc
    filled = [line for line in lines if line.strip()]
    if not filled:
        raise QuestionsFileError(f"{path}: no questions")
    if not filled[0].lstrip().startswith("{"):
        return [line.strip() for line in filled]
    questions = []
    for number, row in json_lines(lines, lambda n: f"{path}:{n}", QuestionsFileError):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                or not row["question"].strip():
            raise QuestionsFileError(f"{path}:{number}: needs a non-empty string 'question'")
        questions.append(row["question"])
    return questions


def split_sources(content: str) -> tuple[str, list[dict[str, str]]]:
    """The answer part of a reply and the citations of its trailing sources list (none when
    the reply has no such list)."""
    headings = list(_HEADING.finditer(content))
    if not headings:
        return content.strip(), []
    last = headings[-1]
    citations: list[dict[str, str]] = []
    for line in content[last.end():].splitlines():
        entry = _ENTRY.match(line)
        if entry is None:
            continue
        for marker in _MARKER.findall(entry.group(1)):
            citations.append({"id": marker, "text": entry.group(2)})
    if not citations:
        return content.strip(), []
    return content[:last.start()].strip(), citations


def answer_row(question: str, completion: Any) -> dict[str, Any]:
    """One answers-file row from a chat completion (``openai`` object or its dict)."""
    data = completion.model_dump() if hasattr(completion, "model_dump") else dict(completion)
    extra = data.get("groundqa")
    if isinstance(extra, dict) and isinstance(extra.get("answer"), str):
        return {"question": question, "answer": extra["answer"],
                "citations": [{"id": str(c["id"]), "text": c["quote"]}
                              for c in extra.get("citations") or []]}
    choices = data.get("choices") or []
    content = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
    answer, citations = split_sources(content)
    return {"question": question, "answer": answer, "citations": citations}


def fetch_answers(base_url: str, questions: Sequence[str], *, model: str | None = None,
                  api_key: str | None = None, timeout: float = 120.0,
                  http_client: Any = None) -> list[dict[str, Any]]:
    """Ask every question (one user message each, no history) and return the answers rows.
    ``model`` defaults to the first model the endpoint lists."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout,
                           max_retries=1, http_client=http_client)
    try:
        if model is None:
            listed = client.models.list().data
            if not listed:
                raise ChatFetchError(f"{base_url} lists no models; give one with --model")
            model = listed[0].id
        return [answer_row(q, client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": q}])) for q in questions]
    except openai.APIConnectionError as exc:
        raise ChatFetchError(f"cannot reach {base_url} ({exc})") from exc
    except openai.APIStatusError as exc:
        raise ChatFetchError(f"{base_url} answered HTTP {exc.status_code}: "
                             f"{_first_line(exc.message)}") from exc


def write_answers(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The fetched rows as an answers file (``--answers`` reads it back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]
