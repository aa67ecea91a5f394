"""The question-answering evaluation: run a question set through a client and score the answers.

Scores answer correctness, abstention, citation validity, ALCE citation recall/precision,
groundedness, retrieval of gold documents and latency; writes report.json, report.md and
report.html (per-question table and figures, eval/html_report.py).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eval.clients import AskClient, AskFailed
from eval.metrics import (
    CitedSentence,
    abstention_scores,
    answer_contains,
    citation_scores,
    citation_validity,
    format_metric,
    groundedness,
    hit_at_k,
    latency_percentiles,
    mean_or_nan,
    reciprocal_rank,
    strip_citation_markers,
    token_f1,
)
from eval.questions import Question, load_questions

logger = logging.getLogger(__name__)

#: Metrics a --fail-under gate may name (higher is better).
QUALITY_METRICS = (
    "answer_contains",
    "answer_f1",
    "abstention_precision",
    "abstention_recall",
    "abstention_balanced_accuracy",
    "citation_validity",
    "citation_recall",
    "citation_precision",
    "groundedness",
    "retrieval_hit_at_k",
    "retrieval_mrr",
)
#: Metrics a --fail-over gate may name (lower is better).
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")
METRIC_NAMES = QUALITY_METRICS + LATENCY_METRICS


# --------------------------------------------------------------------------------------------
# Support checking
# --------------------------------------------------------------------------------------------


class SupportCheckerLike(Protocol):
    """The part of ``service.support.SupportChecker`` the evaluation uses."""

    def check(self, claim: str, quotes: list[str]) -> Any:
        """Return an object whose ``label`` is (or has ``.value``) "supported"/"partial"/..."""
        ...


def support_function(checker: SupportCheckerLike) -> Callable[[str, list[str]], bool]:
    """Wrap a checker as a cached yes/no ``supports(claim, quotes)``: only "supported" is yes."""
    cache: dict[tuple[str, tuple[str, ...]], bool] = {}

    def supports(claim: str, quotes: list[str]) -> bool:
        key = (claim, tuple(quotes))
        if key not in cache:
            label = checker.check(claim, list(quotes)).label
            cache[key] = getattr(label, "value", label) == "supported"
        return cache[key]

    return supports


def default_checker() -> SupportCheckerLike:
    """The service's own support checker, lexical features only (no model load)."""
    from service.support import SupportChecker

    return SupportChecker(embedder=None)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


@dataclass
class QuestionResult:
    """Everything measured for one question; ``problems`` lists what went wrong, for people."""

    id: str
    type: str
    question: str
    gold_answerable: bool
    answer: str = ""
    abstained: bool | None = None
    error: str | None = None
    latency_ms: float | None = None
    answer_contains: float = math.nan
    answer_f1: float = math.nan
    retrieval_hit_at_k: float = math.nan
    retrieval_mrr: float = math.nan
    citation_checks: int = 0
    citation_checks_passed: int = 0
    citation_recall: float = math.nan
    citation_precision: float = math.nan
    groundedness: float = math.nan
    passage_doc_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: The service's calibrated confidence (None when it gives none), for the reliability diagram.
    confidence: float | None = None
    #: What the answer cites (id, doc_id, outlet, title, published, quote), for people to check.
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def right(self) -> bool:
        """An answer that contains a gold answer (what a confident system should give)."""
        return self.gold_answerable and self.abstained is False and self.answer_contains == 1.0

    @property
    def failed(self) -> bool:
        """True if anything about this question needs a person's attention."""
        return bool(self.problems)


def _score_citations(
    result: QuestionResult,
    response: dict[str, Any],
    client: AskClient,
    supports: Callable[[str, list[str]], bool],
) -> None:
    answer = result.answer
    citations = [c for c in response.get("citations") or [] if isinstance(c, dict)]
    sentences = [s for s in response.get("sentences") or [] if isinstance(s, dict)]

    validity = citation_validity(answer, citations, client.document_text, sentences)
    result.citation_checks = validity.checks
    result.citation_checks_passed = validity.passed
    result.problems.extend(validity.problems)
    if result.abstained:
        return  # an abstention makes no claims, so there is nothing to ground

    quotes_by_id = {c.get("id"): str(c.get("quote") or "") for c in citations}
    all_quotes = [q for q in quotes_by_id.values() if q]
    cited: list[CitedSentence] = []
    for sentence in sentences:
        start, end = sentence.get("start"), sentence.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            continue
        claim = strip_citation_markers(answer[start:end])
        if not claim:
            continue
        ids = [c.get("id") for c in sentence.get("citations") or [] if isinstance(c, dict)]
        cited.append(CitedSentence(claim, [quotes_by_id[i] for i in ids if i in quotes_by_id]))
    if not cited:
        return
    scores = citation_scores(cited, supports)
    result.citation_recall = scores.recall
    result.citation_precision = scores.precision
    grounded = [bool(all_quotes) and supports(s.claim, all_quotes) for s in cited]
    result.groundedness = groundedness(grounded)
    for index, (cited_sentence, ok, flags) in enumerate(
        zip(cited, scores.sentence_supported, scores.citation_precise, strict=True), start=1
    ):
        claim_text = cited_sentence.claim[:100]
        if not cited_sentence.quotes:
            result.problems.append(f"sentence {index} has no citation: {claim_text!r}")
        elif not ok:
            result.problems.append(
                f"sentence {index} not supported by its citations: {claim_text!r}"
            )
        elif not all(flags):
            result.problems.append(f"sentence {index} carries a citation it does not need")


def score_question(
    question: Question,
    client: AskClient,
    top_k: int,
    supports: Callable[[str, list[str]], bool],
) -> QuestionResult:
    """Ask one question and score the response."""
    result = QuestionResult(question.id, question.type, question.question, question.answerable)
    started = time.perf_counter()
    try:
        response = client.ask(question.question, top_k)
    except AskFailed as exc:
        result.error = str(exc)
        result.problems.append(f"ask failed: {exc}")
        if question.answerable:
            result.answer_contains, result.answer_f1 = 0.0, 0.0
        return result
    result.latency_ms = (time.perf_counter() - started) * 1000

    result.answer = str(response.get("answer") or "")
    result.abstained = not bool(response.get("answerable", True))
    confidence = response.get("confidence")
    if isinstance(confidence, int | float) and not isinstance(confidence, bool):
        result.confidence = float(confidence)
    result.citations = [
        {key: c.get(key) for key in ("id", "doc_id", "outlet", "title", "published", "quote")}
        for c in response.get("citations") or [] if isinstance(c, dict)
    ]
    plain_answer = strip_citation_markers(result.answer)

    if question.answerable:
        if result.abstained:
            result.answer_contains, result.answer_f1 = 0.0, 0.0
            result.problems.append("abstained on a question the articles answer")
        else:
            result.answer_contains = float(answer_contains(plain_answer, question.answers))
            result.answer_f1 = token_f1(plain_answer, question.answers)
            if not result.answer_contains:
                expected = "; ".join(question.answers)
                result.problems.append(f"answer contains none of the gold answers ({expected})")
    elif not result.abstained:
        result.problems.append("answered a question the articles cannot answer")

    passages = [p for p in response.get("passages") or [] if isinstance(p, dict)]
    result.passage_doc_ids = [str(p.get("doc_id")) for p in passages]
    if question.gold_doc_ids:
        result.retrieval_hit_at_k = hit_at_k(result.passage_doc_ids, question.gold_doc_ids, top_k)
        result.retrieval_mrr = reciprocal_rank(
            result.passage_doc_ids[:top_k], question.gold_doc_ids
        )
        if not result.retrieval_hit_at_k:
            result.problems.append(f"no gold document among the top {top_k} passages")

    _score_citations(result, response, client, supports)
    return result


# --------------------------------------------------------------------------------------------
# Aggregation and reports
# --------------------------------------------------------------------------------------------


def aggregate(results: Sequence[QuestionResult]) -> dict[str, float]:
    """Overall metrics (see module docstring); NaN where nothing could be scored."""
    answerable = [r for r in results if r.gold_answerable]
    responded = [r for r in results if r.abstained is not None]
    abstention = abstention_scores(
        [not r.gold_answerable for r in responded], [bool(r.abstained) for r in responded]
    )
    checks = sum(r.citation_checks for r in results)
    passed = sum(r.citation_checks_passed for r in results)
    p50, p95 = latency_percentiles([r.latency_ms for r in results if r.latency_ms is not None])
    return {
        "answer_contains": mean_or_nan(r.answer_contains for r in answerable),
        "answer_f1": mean_or_nan(r.answer_f1 for r in answerable),
        "abstention_precision": abstention.precision,
        "abstention_recall": abstention.recall,
        "abstention_balanced_accuracy": abstention.balanced_accuracy,
        "citation_validity": passed / checks if checks else math.nan,
        "citation_recall": mean_or_nan(r.citation_recall for r in results),
        "citation_precision": mean_or_nan(r.citation_precision for r in results),
        "groundedness": mean_or_nan(r.groundedness for r in results),
        "retrieval_hit_at_k": mean_or_nan(r.retrieval_hit_at_k for r in results),
        "retrieval_mrr": mean_or_nan(r.retrieval_mrr for r in results),
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
    }


def aggregate_by_type(results: Sequence[QuestionResult]) -> dict[str, dict[str, float]]:
    """A few headline metrics per question type (answer, abstention rate, retrieval, citations)."""
    table: dict[str, dict[str, float]] = {}
    for qtype in sorted({r.type for r in results}):
        group = [r for r in results if r.type == qtype]
        responded = [r for r in group if r.abstained is not None]
        table[qtype] = {
            "n": float(len(group)),
            "answer_contains": mean_or_nan(r.answer_contains for r in group),
            "abstain_rate": (
                sum(bool(r.abstained) for r in responded) / len(responded)
                if responded
                else math.nan
            ),
            "retrieval_hit_at_k": mean_or_nan(r.retrieval_hit_at_k for r in group),
            "citation_recall": mean_or_nan(r.citation_recall for r in group),
        }
    return table


def _json_safe(value: Any) -> Any:
    """NaN → null so report.json is strict JSON (null reads as "n/a")."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class QaReport:
    """The outcome of a QA evaluation run."""

    metrics: dict[str, float]
    by_type: dict[str, dict[str, float]]
    results: list[QuestionResult]
    top_k: int
    questions_path: str
    json_path: Path | None = None
    markdown_path: Path | None = None
    html_path: Path | None = None

    @property
    def failures(self) -> list[QuestionResult]:
        """Questions with at least one problem."""
        return [r for r in self.results if r.failed]

    @property
    def errors(self) -> int:
        """How many asks failed outright."""
        return sum(1 for r in self.results if r.error)

    def to_json(self) -> dict[str, Any]:
        """The report as strict-JSON-compatible data (NaN as null)."""
        return _json_safe(
            {
                "questions_path": self.questions_path,
                "top_k": self.top_k,
                "questions": len(self.results),
                "errors": self.errors,
                "metrics": self.metrics,
                "by_type": self.by_type,
                "results": [asdict(r) for r in self.results],
            }
        )

    def to_markdown(self) -> str:
        """Aggregate table, per-type table, then one entry per failing question."""
        lines = [
            "# groundqa QA evaluation",
            "",
            f"Questions: {len(self.results)} from `{self.questions_path}`, top_k={self.top_k}, "
            f'failed asks: {self.errors}. "n/a" means nothing could be scored.',
            "",
            "| metric | value |",
            "|---|---|",
        ]
        for name in METRIC_NAMES:
            digits = 1 if name in LATENCY_METRICS else 3
            lines.append(f"| {name} | {format_metric(self.metrics[name], digits)} |")
        lines += ["", "## By question type", ""]
        columns = ["n", "answer_contains", "abstain_rate", "retrieval_hit_at_k", "citation_recall"]
        lines += ["| type | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for qtype, row in self.by_type.items():
            cells = [str(int(row["n"]))] + [format_metric(row[c]) for c in columns[1:]]
            lines.append(f"| {qtype} | " + " | ".join(cells) + " |")
        failures = self.failures
        lines += ["", f"## Failures ({len(failures)})", ""]
        for r in failures:
            gold = "answerable" if r.gold_answerable else "not answerable"
            lines.append(f"### {r.id} ({r.type}, {gold}): {r.question}")
            lines.append("")
            answer = r.answer.replace("\n", " ") if r.answer else "(no answer)"
            lines.append(f"- answer: {answer}")
            lines.extend(f"- {problem}" for problem in r.problems)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def write(self, report_dir: str | Path) -> None:
        """Write report.json, report.md and report.html into ``report_dir`` (created if needed)."""
        directory = Path(report_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.json_path = directory / "report.json"
        self.markdown_path = directory / "report.md"
        self.json_path.write_text(
            json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        self.markdown_path.write_text(self.to_markdown(), encoding="utf-8")
        from eval.html_pages import qa_page

        self.html_path = qa_page(self).write(directory / "report.html")


def run_qa_eval(
    questions_path: str | Path,
    client: AskClient,
    report_dir: str | Path | None,
    top_k: int = 5,
    checker: SupportCheckerLike | None = None,
) -> QaReport:
    """Ask every question in ``questions_path`` through ``client`` and score the answers.

    ``checker`` defaults to the service's SupportChecker (lexical, no model). Writes report.json
    and report.md into ``report_dir`` unless it is None. Raises QuestionFileError for a bad file.
    """
    questions = load_questions(questions_path)
    supports = support_function(checker if checker is not None else default_checker())
    results = []
    for question in questions:
        logger.info("asking %s: %s", question.id, question.question)
        results.append(score_question(question, client, top_k, supports))
    report = QaReport(
        metrics=aggregate(results),
        by_type=aggregate_by_type(results),
        results=results,
        top_k=top_k,
        questions_path=str(questions_path),
    )
    if report_dir is not None:
        report.write(report_dir)
    return report


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


def parse_gate(spec: str, *, maximum: bool,
               names: Sequence[str] = METRIC_NAMES) -> tuple[str, float]:
    """Parse "NAME=VALUE" for --fail-under (``maximum=False``) or --fail-over (``maximum=True``).

    Quality metrics are minima and latency metrics maxima; the wrong kind raises ValueError.
    """
    name, sep, raw = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"gate {spec!r} is not NAME=VALUE")
    if name not in names:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(names)})")
    if maximum and name not in LATENCY_METRICS:
        raise ValueError(f"{name} is higher-is-better; gate it with --fail-under")
    if not maximum and name in LATENCY_METRICS:
        raise ValueError(f"{name} is a maximum; gate it with --fail-over")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"gate {spec!r}: {raw!r} is not a number") from None
    if math.isnan(value):
        raise ValueError(f"gate {spec!r}: threshold must be a number")
    return name, value


def check_gates(
    metrics: dict[str, float],
    minima: Sequence[tuple[str, float]] = (),
    maxima: Sequence[tuple[str, float]] = (),
) -> list[str]:
    """Describe every failing gate; a gated metric that is n/a fails (it cannot be verified)."""
    failures: list[str] = []
    for name, threshold in minima:
        value = metrics[name]
        if math.isnan(value):
            failures.append(f"{name} is n/a (required >= {threshold:g})")
        elif value < threshold:
            failures.append(f"{name} = {value:.3f} < {threshold:g}")
    for name, threshold in maxima:
        value = metrics[name]
        if math.isnan(value):
            failures.append(f"{name} is n/a (required <= {threshold:g})")
        elif value > threshold:
            failures.append(f"{name} = {value:.1f} > {threshold:g}")
    return failures
