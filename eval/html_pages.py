"""The HTML page of each evaluation: QA (question file or SQuAD-format), retrieval, checker.

Each page has the headline metrics, three figures (a reliability diagram of confidence against
correctness, scores by question type or setting, a latency histogram) and one row per question
with what was answered, what it cites and the verdict. Built with ``eval/html_report.py``,
which escapes every piece of text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.html_report import (
    Cell,
    HtmlReport,
    Raw,
    grouped_bars_figure,
    latency_figure,
    lines,
    reliability_figure,
    verdict,
)

if TYPE_CHECKING:
    from eval.qa import QaReport, QuestionResult
    from eval.squad_qa import SquadReport

#: Longest quote or document text shown in a table cell (the JSON report has them in full).
CELL_CHARS = 400
#: Evidence sentences shown per claim in the checker's table.
QUOTES_SHOWN = 6


def _clip(text: str, limit: int = CELL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(value: float | None) -> int | None:
    """Milliseconds as a whole number (a table of latencies needs no fractions)."""
    return None if value is None or math.isnan(value) else round(value)


def _citation_lines(citations: Sequence[Mapping[str, Any]]) -> Raw:
    """``[n] outlet, date — “quote”`` per citation (what a reader checks the answer against)."""
    out = []
    for c in citations:
        source = ", ".join(str(part) for part in (c.get("outlet"), c.get("published")) if part)
        out.append(f"[{c.get('id')}] {source or 'no source'} — "
                   f"“{_clip(str(c.get('quote') or ''), 240)}”")
    return lines(out, "quote")


# --------------------------------------------------------------------------------------------
# QA on a question file


def qa_verdict(result: QuestionResult) -> tuple[str, str]:
    """(verdict, ok|bad|meh) of one question, in words a reader scans for."""
    if result.error:
        return "ask failed", "bad"
    if result.gold_answerable:
        if result.abstained:
            return "abstained, but answerable", "bad"
        if result.answer_contains == 1.0:
            return ("right", "ok") if not result.problems else ("right, with problems", "meh")
        return "wrong", "bad"
    if result.abstained:
        return "abstained (right)", "ok"
    return "answered, should abstain", "bad"


def qa_page(report: QaReport) -> HtmlReport:
    """The page for ``groundqa eval qa --questions``."""
    page = HtmlReport("groundqa QA evaluation")
    page.paragraph(f"{len(report.results)} questions from {report.questions_path}, "
                   f"top_k={report.top_k}, failed asks: {report.errors}. "
                   "n/a means nothing could be scored.")
    page.heading("Metrics")
    page.metrics(report.metrics)
    page.heading("Figures")
    scored = [r for r in report.results if r.confidence is not None]
    page.figure(reliability_figure([r.confidence or 0.0 for r in scored],
                                   [r.right for r in scored],
                                   ylabel="share with a right answer"),
                f"Reliability: confidence against a right answer ({len(scored)} questions "
                "with a confidence; right = answerable, answered, gold answer contained).")
    page.figure(grouped_bars_figure({t: {k: v for k, v in row.items() if k != "n"}
                                     for t, row in report.by_type.items()}),
                "Scores by question type.")
    page.figure(latency_figure([r.latency_ms for r in report.results
                                if r.latency_ms is not None]),
                "Latency per question (ms, as the client measured it).")
    page.heading("By question type")
    columns = ["n", "answer_contains", "abstain_rate", "retrieval_hit_at_k", "citation_recall"]
    page.table(["type", *columns], [[qtype, int(row["n"]), *(row[c] for c in columns[1:])]
                                    for qtype, row in report.by_type.items()])
    page.heading(f"Questions ({len(report.results)})")
    rows: list[list[Cell]] = []
    for r in report.results:
        word, kind = qa_verdict(r)
        rows.append([r.id, r.type, r.question, r.answer or "(no answer)",
                     _citation_lines(r.citations),
                     r.confidence, _ms(r.latency_ms),
                     Raw(verdict(word, kind).markup + lines(r.problems, "muted").markup)])
    page.table(["id", "type", "question", "answer", "citations", "confidence", "ms",
                "verdict"], rows, css="questions")
    return page


# --------------------------------------------------------------------------------------------
# QA on a SQuAD-format file


def squad_page(report: SquadReport) -> HtmlReport:
    """The page for ``groundqa eval qa --squad``."""
    page = HtmlReport(f"QA evaluation on {report.source}")
    page.paragraph("Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()))
    page.heading("Metrics")
    page.metrics(report.metrics)
    page.heading("Figures")
    ok = [r for r in report.results if r.error is None]
    threshold = report.settings.get("min_confidence")
    page.figure(reliability_figure([r.confidence for r in ok], [r.right for r in ok],
                                   ylabel="share right (F1 ≥ 0.5)",
                                   threshold=threshold if isinstance(threshold, float) else None),
                "Reliability: confidence against a right short answer (answered or not).")
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted({r.kind for r in ok}):
        group = [r for r in ok if r.kind == kind]
        answerable = [r for r in group if r.golds]
        by_kind[kind] = {
            "F1": (sum(r.f1 for r in answerable) / len(answerable)) if answerable else math.nan,
            "answer rate": sum(r.answered for r in group) / len(group),
            "right": sum(r.right for r in group) / len(group),
        }
    page.figure(grouped_bars_figure(by_kind), "Scores by question kind.")
    page.figure(latency_figure([r.latency_ms for r in ok]), "Latency per question (ms).")
    if report.operating_points:
        from eval.squad_qa import OPERATING_POINT_COLUMNS, OPERATING_POINT_TITLE

        page.heading(OPERATING_POINT_TITLE)
        page.table([title for _, title in OPERATING_POINT_COLUMNS],
                   [[point[key] for key, _ in OPERATING_POINT_COLUMNS]
                    for point in report.operating_points])
    page.heading(f"Questions ({len(report.results)})")
    rows: list[list[Cell]] = []
    for r in report.results:
        if r.error:
            word, kind = "ask failed", "bad"
        elif r.golds:
            word, kind = (("right", "ok") if r.right else
                          ("abstained, but answerable", "bad") if not r.answered else
                          ("wrong", "bad"))
        else:
            word, kind = ("abstained (right)", "ok") if not r.answered else \
                ("answered, should abstain", "bad")
        said = r.short if r.answered else f"(abstained: {r.abstain_reason})"
        rows.append([r.qid, r.kind, r.question, " / ".join(r.golds[:3]) or "(none)", said,
                     _citation_lines(r.citations), r.confidence, r.f1, _ms(r.latency_ms),
                     Raw(verdict(word, kind).markup
                         + ("" if r.citations_valid else
                            lines(["a citation does not match its document"], "muted").markup)
                         + (lines([r.error], "muted").markup if r.error else ""))])
    page.table(["id", "kind", "question", "gold", "answer", "citations", "confidence", "F1",
                "ms", "verdict"], rows, css="questions")
    return page


# --------------------------------------------------------------------------------------------
# Retrieval


@dataclass(frozen=True)
class QueryOutcome:
    """One query under one setting: documents best first, the top passage's cosine, time."""

    query_id: str
    ranked: list[str]
    top_dense: float
    ms: float


def retrieval_page(report: Mapping[str, Any], label: str, outcomes: Sequence[QueryOutcome],
                   queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                   titles: Mapping[str, str], shown: int = 3) -> HtmlReport:
    """The page for ``groundqa eval retrieval``; per-query rows are for setting ``label``."""
    from eval.metrics import ndcg_at_k

    page = HtmlReport(f"Retrieval evaluation: {report['dataset']}")
    page.paragraph(f"{report['documents']} documents, {report['chunks']} chunks, "
                   f"{report['test_queries']} test queries. Per-query rows and the reliability "
                   f"and latency figures are for {label}.")
    page.heading("Metrics (test)")
    metric_names = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "ms_per_query"]
    page.table(["setting", *metric_names],
               [[row["label"], *(row["test"].get(m) for m in metric_names)]
                for row in report["results"]])
    page.heading("Figures")
    relevant_first = [bool(qrels.get(o.query_id, {}).get(o.ranked[0], 0)) if o.ranked else False
                      for o in outcomes]
    page.figure(reliability_figure([min(1.0, max(0.0, o.top_dense)) for o in outcomes],
                                   relevant_first, xlabel="cosine of the best passage",
                                   ylabel="share with a relevant first document"),
                "Reliability: the best passage's cosine against a relevant first document "
                "(how far the similarity can be trusted).")
    page.figure(grouped_bars_figure({row["label"]: {m: row["test"][m] for m in metric_names[:4]}
                                     for row in report["results"]}),
                "Scores by setting (test queries).")
    page.figure(latency_figure([o.ms for o in outcomes]), f"Latency per query (ms), {label}.")
    page.heading(f"Queries ({len(outcomes)}), {label}")
    rows: list[list[Cell]] = []
    for o, first_relevant in zip(outcomes, relevant_first, strict=True):
        judged = qrels.get(o.query_id, {})
        hit = any(judged.get(d, 0) > 0 for d in o.ranked[:10])
        ndcg = ndcg_at_k(o.ranked, judged, 10)
        word, kind = ("relevant first", "ok") if first_relevant else \
            ("relevant in top 10", "meh") if hit else ("missed", "bad")
        rows.append([o.query_id, queries.get(o.query_id, ""),
                     lines([f"{d}{' ✓' if judged.get(d, 0) > 0 else ''} — "
                            f"{_clip(titles.get(d, ''), 120)}" for d in o.ranked[:shown]]),
                     lines([f"{d} — {_clip(titles.get(d, ''), 120)}"
                            for d, grade in judged.items() if grade > 0], "quote"),
                     ndcg, o.top_dense, round(o.ms, 2), verdict(word, kind)])
    page.table(["id", "query", f"retrieved (top {shown})", "relevant", "nDCG@10",
                "best cosine", "ms", "verdict"], rows, css="questions")
    return page


# --------------------------------------------------------------------------------------------
# Support checker


@dataclass(frozen=True)
class CheckOutcome:
    """One claim checked against its quotes: gold, score, label and the time it took."""

    claim: str
    quotes: tuple[str, ...]
    supported: bool
    source_label: str
    score: float
    label: str
    predicted: bool
    ms: float


def check_examples(checker: Any, examples: Sequence[Any]) -> list[CheckOutcome]:
    """Run ``checker`` on each example (``claim``, ``quotes``, ``supported``), timing each."""
    mode = getattr(checker, "mode", "lexical")
    thresholds = checker.thresholds_for_mode(mode)
    out = []
    for ex in examples:
        started = time.perf_counter()
        result = checker.check(ex.claim, list(ex.quotes))
        ms = (time.perf_counter() - started) * 1000
        out.append(CheckOutcome(ex.claim, tuple(ex.quotes), bool(ex.supported),
                                str(getattr(ex, "source_label", "")), float(result.score),
                                str(getattr(result.label, "value", result.label)),
                                bool(result.score >= thresholds.binary), ms))
    return out


def checker_page(results: Mapping[str, Any], setting: str, split: str,
                 outcomes: Sequence[CheckOutcome]) -> HtmlReport:
    """The page for ``groundqa eval checker``; per-claim rows are ``setting`` on ``split``."""
    page = HtmlReport("Support checker evaluation")
    page.paragraph(str(results.get("task", "")))
    page.heading("Balanced accuracy (binary threshold)")
    splits = list(dict.fromkeys(s for block in results["settings"].values() for s in block))
    page.table(["setting", *splits],
               [[name, *(block[s]["binary"]["balanced_accuracy"] if s in block else None
                         for s in splits)]
                for name, block in results["settings"].items()])
    page.heading("Figures")
    page.figure(reliability_figure([o.score for o in outcomes], [o.supported for o in outcomes],
                                   xlabel="support score", ylabel="share supported (gold)"),
                f"Reliability: {setting} score against the gold label, {split} "
                f"({len(outcomes)} claims).")
    by_split = {s: {name: block[s]["binary"]["balanced_accuracy"]
                    for name, block in results["settings"].items() if s in block}
                for s in splits}
    page.figure(grouped_bars_figure(by_split, ylabel="balanced accuracy"),
                "Balanced accuracy by split and setting.")
    page.figure(latency_figure([o.ms for o in outcomes], xlabel="ms per check"),
                f"Time per check (ms), {setting}.")
    page.heading(f"Claims ({len(outcomes)}), {setting} on {split}")
    rows: list[list[Cell]] = []
    for o in outcomes:
        right = o.predicted == o.supported
        word = ("right" if right else "wrong") + (": supported" if o.predicted
                                                  else ": not supported")
        shown = [_clip(q, 240) for q in o.quotes[:QUOTES_SHOWN]]
        if len(o.quotes) > QUOTES_SHOWN:
            shown.append(f"(+{len(o.quotes) - QUOTES_SHOWN} more)")
        rows.append([o.claim, lines(shown, "quote"),
                     f"{'supported' if o.supported else 'not supported'} ({o.source_label})",
                     o.label, o.score, round(o.ms, 2), verdict(word, "ok" if right else "bad")])
    page.table(["claim", "quotes", "gold", "label", "score", "ms", "verdict"], rows,
               css="questions")
    return page


def write_checker_html(results: Mapping[str, Any], folder: Path, checker: Any,
                       examples: Sequence[Any], setting: str = "lexical",
                       split: str = "wice_test") -> Path:
    """Check each example with ``checker`` and write ``report.html`` into ``folder``."""
    return checker_page(results, setting, split,
                        check_examples(checker, examples)).write(folder / "report.html")
