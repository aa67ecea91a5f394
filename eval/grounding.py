"""Grounding evaluation of any RAG system's answers: `groundqa eval grounding --answers FILE`
(or `--chat-url URL --questions FILE`, which fetches them first: ``eval/grounding_fetch.py``).

The file holds one JSON object per line, ``{"question", "answer", "citations": [{"id",
"text"}]}``, where ``answer`` marks its sources as ``[id]``. Every answer sentence is judged by
groundqa's shipped support checker against the texts it cites. Framing lines such as "Here is
a summary:" are recognised and not judged; a number, date or name that the cited text does not
state makes a sentence unsupported; a leading source attribution such as "<Outlet> (2024)
reports:" is not judged, since the file gives the cited texts, not their sources. Reported:
per-sentence labels, ALCE citation recall and precision (Gao et al. 2023), and groundedness
(share of judged sentences that are supported, uncited ones counting as unsupported), as
report.json, sentences.jsonl and report.html with unsupported sentences highlighted.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from eval.jsonl import json_file
from eval.metrics import CitedSentence, citation_scores
from service.generator import split_sentences
from service.support import SupportChecker, SupportLabel, strip_attribution
from service.support.facts import claim_text, is_framing, missing_facts


class AnswersFileError(ValueError):
    """The answers file is not the documented JSONL layout (says which line and why)."""


@dataclass
class JudgedSentence:
    """One answer sentence with its citations and the checker's verdict."""

    text: str
    citations: list[str]
    label: str
    score: float
    reasons: list[str] = field(default_factory=list)


def read_answers(path: Path) -> list[dict[str, Any]]:
    """The rows of an answers file, validated (``AnswersFileError`` names the bad line)."""
    rows = []
    for number, row in json_file(path, AnswersFileError):
        if not isinstance(row, dict) or not isinstance(row.get("answer"), str):
            raise AnswersFileError(f"{path}:{number}: needs a string field 'answer'")
        citations = row.get("citations", [])
        if not isinstance(citations, list) or not all(
                isinstance(c, dict) and "id" in c and isinstance(c.get("text"), str)
                for c in citations):
            raise AnswersFileError(f"{path}:{number}: 'citations' must be a list of "
                                   "{\"id\", \"text\"} objects")
        rows.append(row)
    if not rows:
        raise AnswersFileError(f"{path}: no answers")
    return rows


def evaluate_answers(rows: Sequence[dict[str, Any]],
                     checker: SupportChecker | None = None) -> dict[str, Any]:
    """Per-sentence labels, ALCE citation recall/precision and groundedness for ``rows``."""
    checker = checker or SupportChecker.shipped()
    binary = checker.thresholds_for_mode(checker.mode).binary

    @lru_cache(maxsize=4096)
    def judge(claim: str, quotes: tuple[str, ...]) -> tuple[str, float, tuple[str, ...]]:
        result = checker.check(claim, list(quotes))
        # A lead such as "<Outlet> (March 2024) reports:" names the cited text's source, which
        # the text itself cannot confirm: the statement after it is what is judged.
        facts = missing_facts(strip_attribution(claim), list(quotes))
        if facts:
            return SupportLabel.UNSUPPORTED.value, min(result.score, 0.05), tuple(facts)
        label = result.label.value if result.score >= binary or \
            result.label == SupportLabel.SUPPORTED else SupportLabel.UNSUPPORTED.value
        return label, result.score, result.reasons

    def supports(claim: str, quotes: list[str]) -> bool:
        return judge(claim, tuple(quotes))[0] == SupportLabel.SUPPORTED.value

    answers: list[dict[str, Any]] = []
    all_cited: list[CitedSentence] = []
    all_supported: list[bool] = []
    for row in rows:
        texts = {str(c["id"]): c["text"] for c in row.get("citations", [])}
        judged: list[JudgedSentence] = []
        for sentence, markers in split_sentences(row["answer"]):
            if is_framing(sentence):
                judged.append(JudgedSentence(sentence, [], "framing", math.nan))
                continue
            claim = claim_text(sentence)
            ids = [str(m) for m in markers]
            quotes = [texts[i] for i in ids if i in texts]
            if not quotes:
                why = "no citation" if not ids else "cites no given text"
                judged.append(JudgedSentence(sentence, ids, "unsupported", 0.0, [why]))
                all_supported.append(False)
                continue
            label, score, reasons = judge(claim, tuple(quotes))
            judged.append(JudgedSentence(sentence, ids, label, round(score, 4), list(reasons)))
            all_cited.append(CitedSentence(claim, quotes))
            all_supported.append(label == SupportLabel.SUPPORTED.value)
        scored = [s for s in judged if s.label != "framing"]
        answers.append({
            "question": row.get("question"), "answer": row["answer"],
            "groundedness": (sum(s.label == "supported" for s in scored) / len(scored)
                             if scored else math.nan),
            "sentences": [s.__dict__ for s in judged]})
    alce = citation_scores(all_cited, supports)
    return {
        "checker": checker.mode,
        "answers": len(answers),
        "sentences": len(all_supported),
        "groundedness": (sum(all_supported) / len(all_supported) if all_supported
                         else math.nan),
        "citation_recall": alce.recall,
        "citation_precision": alce.precision,
        "mean_answer_groundedness": _mean([a["groundedness"] for a in answers]),
        "per_answer": answers,
    }


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def write_grounding_report(result: dict[str, Any], report_dir: Path) -> None:
    """report.json, sentences.jsonl and report.html (unsupported sentences highlighted)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    with open(report_dir / "sentences.jsonl", "w", encoding="utf-8") as fh:
        for index, answer in enumerate(result["per_answer"]):
            for sentence in answer["sentences"]:
                fh.write(json.dumps({"answer": index, **sentence}, default=str) + "\n")
    colours = {"supported": "#e6f4ea", "partial": "#fff4d6", "unsupported": "#fde2e1",
               "framing": "#eeeeee"}
    parts = ["<!doctype html><meta charset='utf-8'><title>Grounding report</title>",
             "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
             "span.s{padding:1px 3px;border-radius:3px}"
             "span.unsupported{outline:2px solid #c5221f}</style>",
             "<h1>Grounding report</h1><p>",
             html.escape(f"checker: {result['checker']}; answers: {result['answers']}; "
                         f"sentences: {result['sentences']}; groundedness: "
                         f"{result['groundedness']:.3f}; citation recall: "
                         f"{result['citation_recall']:.3f}; citation precision: "
                         f"{result['citation_precision']:.3f}"),
             "</p><p>Green: supported; yellow: partial; red outline: unsupported; grey: "
             "framing (not judged). Hover a sentence for its score and reasons.</p>"]
    for answer in result["per_answer"]:
        parts.append(f"<h2>{html.escape(str(answer['question'] or ''))}</h2><p>")
        for s in answer["sentences"]:
            tip = f"{s['label']} {s['score']}: {'; '.join(s['reasons'])}"
            parts.append(f"<span class='s {s['label']}' style='background:"
                         f"{colours.get(s['label'], '#fff')}' title='{html.escape(tip)}'>"
                         f"{html.escape(s['text'])}</span> ")
        parts.append("</p>")
    (report_dir / "report.html").write_text("".join(parts), encoding="utf-8")
