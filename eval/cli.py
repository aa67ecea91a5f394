"""`groundqa eval ...`: run the QA, retrieval and support-checker evaluations from the shell.

Also runnable as ``python -m eval.cli``. Exit codes: 0 ok, 1 a quality gate failed,
2 bad input (missing or malformed file, unknown metric, unreachable service).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Evaluate groundqa: answers and citations (qa), retrieval, the support checker.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail_input(message: str) -> NoReturn:
    """Print a one-line message for a user's mistake and exit with code 2."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _numeric_leaves(data: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Every nested dict that holds numbers, keyed by its dotted path, numbers only."""
    found: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return found
    numbers = {
        str(k): v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if numbers:
        found[path or "(top)"] = numbers
    for key, value in data.items():
        found.update(_numeric_leaves(value, f"{path}.{key}" if path else str(key)))
    return found


def _print_result_tables(title: str, data: dict[str, Any]) -> None:
    """Render an evaluation's result dict as tables: one row per nested block of numbers."""
    groups: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for path, numbers in _numeric_leaves(data).items():
        groups.setdefault(tuple(numbers), {})[path] = numbers
    if not groups:
        console.print_json(json.dumps(data, default=str))
        return
    for columns, rows in groups.items():
        table = Table(title=title)
        table.add_column("")
        for column in columns:
            table.add_column(column, justify="right")
        for path, numbers in rows.items():
            table.add_row(path, *(_fmt(numbers[c]) for c in columns))
        console.print(table)


@app.command("qa")
def qa_command(
    questions: Annotated[
        Path | None, typer.Option("--questions", help="Question file (JSON lines).")
    ] = None,
    squad: Annotated[
        Path | None,
        typer.Option("--squad", help="A SQuAD-format JSON file, or an MRQA JSON-lines file "
                     "(.jsonl, .jsonl.gz): its contexts become the corpus and its questions are "
                     "asked (short-answer EM/F1, abstention, calibration)."),
    ] = None,
    drop_third: Annotated[
        bool, typer.Option("--drop-third", help="With --squad: leave a third of the contexts "
                           "out of the corpus; their questions become unanswerable."),
    ] = False,
    subset: Annotated[
        str, typer.Option("--subset", help="With --squad: which contexts to ask about: all, "
                          "squad-fold-b, squad-dev, newsqa-heldout, newsqa-dev (the packaged "
                          "reader's splits, see service/answer/models/reader/README.md).")
    ] = "all",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="With --squad: ask at most this many "
                                 "questions (evenly spread).")
    ] = None,
    write_corpus: Annotated[
        Path | None, typer.Option("--write-corpus", help="With --squad: write the corpus as "
                                  "files for `groundqa ingest` (to evaluate a server with "
                                  "--url) and exit.")
    ] = None,
    min_confidence: Annotated[
        float | None, typer.Option("--min-confidence", min=0.0, max=1.0,
                                   help="In-process: override the calibrated threshold.")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Evaluate a running service at this base URL.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="GROUNDQA_API_KEY", help="API key for --url.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data directory for the in-process service "
            "(default: $GROUNDQA_DATA_DIR or ./data). Ignored with --url.",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir",
                                  help="Write report.json, report.md and report.html here.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Passages to retrieve.")] = 5,
    fail_under: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-under",
            help="NAME=VALUE: exit 1 if a quality metric is below VALUE (repeatable).",
        ),
    ] = None,
    fail_over: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-over",
            help="NAME=VALUE: exit 1 if a latency metric (latency_p50_ms, latency_p95_ms) "
            "is above VALUE (repeatable).",
        ),
    ] = None,
) -> None:
    """Ask every question, score answers, abstention, citations and grounding; print a table."""
    if (questions is None) == (squad is None):
        _fail_input("give exactly one of --questions FILE or --squad FILE")
    if squad is not None:
        from eval.squad_cli import run_squad_command

        run_squad_command(squad, drop_third=drop_third, subset=subset, limit=limit, url=url,
                          api_key=api_key, data_dir=data_dir, report_dir=report_dir,
                          top_k=top_k, write_corpus=write_corpus,
                          min_confidence=min_confidence, fail_under=fail_under or [],
                          fail=_fail_input, console=console)
        return
    assert questions is not None
    from eval.clients import EvalClientError, HttpAskClient, InProcessAskClient
    from eval.qa import METRIC_NAMES, check_gates, parse_gate
    from eval.qa import run_qa_eval as run
    from eval.questions import QuestionFileError, load_questions

    try:
        minima = [parse_gate(spec, maximum=False) for spec in fail_under or []]
        maxima = [parse_gate(spec, maximum=True) for spec in fail_over or []]
        load_questions(questions)  # validate before building a (slow) service
    except (ValueError, QuestionFileError) as exc:
        _fail_input(str(exc))

    client: Any
    if url:
        client = HttpAskClient(url, api_key=api_key)
    else:
        directory = data_dir or Path(os.environ.get("GROUNDQA_DATA_DIR", "data"))
        client = InProcessAskClient(directory)
    try:
        report = run(questions, client, report_dir, top_k=top_k)
    except EvalClientError as exc:
        _fail_input(str(exc))
    except ImportError as exc:
        _fail_input(f"the service core is not importable ({exc}); install groundqa")
    except QuestionFileError as exc:
        _fail_input(str(exc))

    table = Table(title=f"QA evaluation: {len(report.results)} questions, top_k={top_k}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in METRIC_NAMES:
        value = report.metrics[name]
        digits = 1 if "latency" in name else 3
        table.add_row(name, "n/a" if math.isnan(value) else f"{value:.{digits}f}")
    console.print(table)
    console.print(
        f"{len(report.failures)} question(s) with problems; failed asks: {report.errors}",
        highlight=False,
    )
    if report.markdown_path is not None:
        console.print(f"report: {report.markdown_path}, {report.html_path}", highlight=False)

    failures = check_gates(report.metrics, minima, maxima)
    if failures:
        for failure in failures:
            err_console.print(f"gate failed: {failure}", markup=False, highlight=False)
        raise typer.Exit(code=1)


@app.command("retrieval")
def retrieval_command(
    beir: Annotated[
        Path, typer.Option("--beir", help="BEIR-format directory (corpus, queries, qrels).")
    ],
    mode: Annotated[str, typer.Option("--mode", help="dense, bm25, hybrid or all.")] = "all",
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write the report here.")
    ] = None,
) -> None:
    """Score retrieval (nDCG@10, Recall@k, MRR) on a BEIR-format dataset."""
    modes = {"all": ["dense", "bm25", "hybrid"]}.get(mode, [mode])
    if any(m not in ("dense", "bm25", "hybrid") for m in modes):
        _fail_input(f"unknown --mode {mode!r} (use dense, bm25, hybrid or all)")
    if not beir.is_dir():
        _fail_input(f"{beir}: no such directory")
    try:
        from eval.retrieval import run_retrieval_eval
    except ImportError as exc:
        _fail_input(f"the retrieval evaluation is not available ({exc})")
    try:
        result = run_retrieval_eval(beir, modes, report_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail_input(str(exc))
    # run_retrieval_eval prints its own markdown table; only say where the report went.
    del result
    if report_dir is not None:
        console.print(f"report: {report_dir}", highlight=False)


@app.command("checker")
def checker_command(
    wice: Annotated[Path, typer.Option("--wice", help="WiCE claim file or directory.")],
    climate_fever: Annotated[
        Path | None, typer.Option("--climate-fever", help="Climate-FEVER file.")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write the report here.")
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare/--no-compare", help="Also score the lexical+embedding "
                           "and alignment models (loads the embedding model; slow first run).")
    ] = True,
) -> None:
    """Score the support checker on any WiCE-format claim file (and optionally Climate-FEVER).

    report.json carries ``balanced_accuracy`` and ``auc`` of the shipped checker at its shipped
    threshold at the top level, next to the word-coverage ``baseline``, and reliability.png.
    """
    if not wice.exists():
        _fail_input(f"{wice}: no such file or directory")
    if climate_fever is not None and not climate_fever.exists():
        _fail_input(f"{climate_fever}: no such file")
    try:
        from eval.checker import run_checker_eval
    except ImportError as exc:
        _fail_input(f"the checker evaluation is not available ({exc})")
    try:
        result = run_checker_eval(wice, climate_fever, report_dir, use_model=compare)
    except (FileNotFoundError, ValueError, KeyError, SyntaxError) as exc:
        _fail_input(str(exc))
    _print_result_tables("Support checker evaluation", result)
    if report_dir is not None:
        console.print(f"report: {report_dir}", highlight=False)


@app.command("grounding")
def grounding_command(
    answers: Annotated[Path | None, typer.Option("--answers", help="JSONL of {question, answer, "
                                                 "citations: [{id, text}]} from any RAG "
                                                 "system.")] = None,
    chat_url: Annotated[str | None, typer.Option(
        "--chat-url", help="Instead of --answers: ask an OpenAI-compatible chat API at this "
        "base URL (e.g. http://host:8000/v1) every question of --questions.")] = None,
    questions: Annotated[Path | None, typer.Option(
        "--questions", help="With --chat-url: JSON lines with a 'question' field, or one "
        "question per line.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="With --chat-url: the model to ask (default: the first listed).")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="GROUNDQA_CHAT_API_KEY",
        help="With --chat-url: the bearer key, if the API needs one.")] = None,
    save_answers: Annotated[Path | None, typer.Option(
        "--save-answers", help="With --chat-url: also write the fetched answers here, as an "
        "answers file for --answers.")] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write report.json, sentences.jsonl and "
                                  "report.html here.")
    ] = None,
) -> None:
    """Judge any system's cited answers: per-sentence labels, ALCE citation recall/precision,
    groundedness. Read them from a file, or fetch them from an OpenAI-compatible chat API."""
    from eval.grounding import (
        AnswersFileError,
        evaluate_answers,
        read_answers,
        write_grounding_report,
    )
    from eval.grounding_fetch import (
        ChatFetchError,
        QuestionsFileError,
        fetch_answers,
        read_questions,
        write_answers,
    )

    if (answers is None) == (chat_url is None):
        _fail_input("give either --answers FILE or --chat-url URL with --questions FILE")
    if chat_url is not None:
        if questions is None:
            _fail_input("--chat-url needs --questions FILE")
        try:
            rows = fetch_answers(chat_url, read_questions(questions), model=model,
                                 api_key=api_key)
        except (QuestionsFileError, ChatFetchError) as exc:
            _fail_input(str(exc))
        if save_answers is not None:
            write_answers(rows, save_answers)
    else:
        assert answers is not None
        if not answers.is_file():
            _fail_input(f"{answers}: no such file")
        try:
            rows = read_answers(answers)
        except (AnswersFileError, UnicodeDecodeError) as exc:
            _fail_input(str(exc))
    result = evaluate_answers(rows)
    summary = {k: v for k, v in result.items() if k != "per_answer"}
    _print_result_tables("Grounding evaluation", {"grounding": summary})
    if report_dir is not None:
        write_grounding_report(result, report_dir)
        console.print(f"report: {report_dir / 'report.html'}", highlight=False)


if __name__ == "__main__":
    app()
