"""`groundqa eval qa --squad FILE`: build the corpus, ask, score, report (see eval/squad_qa.py)."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from eval.squad_qa import (
    SQUAD_GATES,
    SUBSETS,
    SquadReport,
    aggregate,
    build_set,
    in_subset,
    ingest,
    load_contexts,
    operating_points,
    reliability,
    run,
)


def default_data_dir(squad: Path, subset: str, drop_third: bool) -> Path:
    """A cache folder per file, subset and drop setting, so reruns do not re-embed."""
    digest = hashlib.sha1(f"{squad.resolve()}|{subset}|{drop_third}".encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundqa" / "eval-squad" / digest


def run_squad_command(squad: Path, *, drop_third: bool, subset: str, limit: int | None,
                      url: str | None, api_key: str | None, data_dir: Path | None,
                      report_dir: Path | None, top_k: int, write_corpus: Path | None,
                      min_confidence: float | None, fail_under: Sequence[str],
                      fail: Callable[[str], NoReturn], console: Console) -> None:
    """The body of ``groundqa eval qa --squad``."""
    from eval.clients import EvalClientError, HttpAskClient, InProcessAskClient
    from eval.qa import check_gates, parse_gate
    from eval.squad_qa import write_corpus as write_files

    if subset not in SUBSETS:
        fail(f"unknown --subset {subset!r}; choose from {', '.join(SUBSETS)}")
    try:
        minima = [parse_gate(spec, maximum=False, names=SQUAD_GATES) for spec in fail_under]
    except ValueError as exc:
        fail(str(exc))
    try:
        contexts = load_contexts(squad)
        kept = [c for c in contexts if in_subset(c, subset)]
    except (OSError, ValueError, EOFError) as exc:
        fail(f"cannot read {squad}: {exc}")
    squad_set = build_set(kept, drop_third=drop_third, limit=limit)
    if not squad_set.questions:
        fail(f"{squad}: no questions in subset {subset!r}")
    if write_corpus is not None:
        count = write_files(squad_set, write_corpus)
        console.print(f"wrote {count} documents to {write_corpus}; index them with "
                      f"`groundqa ingest {write_corpus}`", highlight=False)
        return
    client: Any
    settings: dict[str, Any] = {"subset": subset, "drop_third": drop_third, "top_k": top_k,
                                "questions": len(squad_set.questions),
                                "corpus": len(squad_set.corpus)}
    if url:
        client = HttpAskClient(url, api_key=api_key)
        settings["url"] = url
    else:
        from index.embedding import load_embedder
        from service.config import Settings

        directory = data_dir or default_data_dir(squad, subset, drop_third)
        with console.status(f"indexing {len(squad_set.corpus)} contexts in {directory}"):
            ingest(squad_set, directory, load_embedder(Settings().embedder))
        client = InProcessAskClient(directory, min_confidence=min_confidence)
        threshold = client.service().decision_model.threshold
        settings["min_confidence"] = min_confidence if min_confidence is not None else threshold
    try:
        with console.status("asking") as status:
            results = run(squad_set, client, top_k, progress=lambda i, n: status.update(
                f"asked {i}/{n}"))
    except EvalClientError as exc:
        fail(str(exc))
    report = SquadReport(f"{squad.name} ({subset}{', a third dropped' if drop_third else ''})",
                         settings, aggregate(results), reliability(results), results,
                         operating_points(results, settings.get("min_confidence")))
    table = Table(title=f"QA evaluation on {report.source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.metrics.items():
        table.add_row(name, "n/a" if math.isnan(value) else f"{value:.3f}")
    console.print(table)
    if report_dir is not None:
        console.print(f"report: {report.write(report_dir)}", highlight=False)
    failures = check_gates(report.metrics, minima, [])
    if failures:
        for failure in failures:
            console.print(f"gate failed: {failure}", highlight=False)
        raise typer.Exit(code=1)
