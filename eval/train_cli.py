"""`groundqa train …`: reproduce the shipped models (span reader, decision model, checker)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eval import checker_train, reader_train  # noqa: F401 - register their `train` commands
from eval.train_common import app

console = Console()
DECIDE_OUT = Path(__file__).resolve().parent.parent / "service" / "answer" / "models" / \
    "decide.json"


@app.command("decide")
def train_decide(
    squad: Annotated[Path, typer.Option("--squad", exists=True, dir_okay=False,
                                        help="SQuAD 2.0 sample (train-v2.0-first10.json).")],
    newsqa: Annotated[Path, typer.Option("--newsqa", exists=True, dir_okay=False,
                                         help="NewsQA part (newsqa-dev-part.json).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the model.")] = DECIDE_OUT,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Index of the calibration "
                                           "corpus (reused across runs).")]
    = Path.home() / ".cache" / "groundqa" / "decide-calibration",
    read_passages: Annotated[str, typer.Option(
        "--read-passages", help="Retrieved passages the reader reads: one number, or a comma "
        "list to try each and keep the one with the best mean cross-validated balanced "
        "accuracy over the sources (ties: fewer passages, a faster ask).")] = "1,2,3,5",
    limit: Annotated[int | None, typer.Option("--limit", min=10, help="Smoke runs: at most "
                                              "this many questions.")] = None,
    reuse_rows: Annotated[bool, typer.Option("--reuse-rows", help="Refit on the candidates "
                                             "collected by the last run in --data-dir (same "
                                             "reader) instead of asking again.")] = False,
) -> None:
    """Fit the answer-or-abstain model and its threshold on the reader's development data."""
    import logging

    from eval.decide_fit import (
        choose_read_passages,
        collect,
        fit,
        load_rows,
        save_rows,
        write_model,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        counts = sorted({int(n) for n in read_passages.split(",") if n.strip()})
    except ValueError:
        counts = []
    if not counts or not all(1 <= n <= 20 for n in counts):
        console.print(f"error: --read-passages {read_passages!r}: give numbers from 1 to 20, "
                      "comma-separated")
        raise typer.Exit(code=2)
    fitted: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for count in counts:
        saved = data_dir / f"candidates-{count}.jsonl"
        if reuse_rows:
            if not saved.is_file():
                console.print(f"error: no collected candidates in {saved}; run without "
                              "--reuse-rows")
                raise typer.Exit(code=2)
            rows = load_rows(saved)
        else:
            with console.status(f"asking the calibration questions ({count} passages read)"):
                rows = collect(squad, newsqa, data_dir, count, limit)
            save_rows(rows, saved)
        if len({r.right for r in rows if r.features}) < 2:
            console.print("error: the calibration questions gave only one label; nothing to fit")
            raise typer.Exit(code=2)
        fitted[count] = fit(rows)
    chosen, selection = choose_read_passages({n: m for n, (_, m) in fitted.items()})
    weights, metrics = fitted[chosen]
    if len(counts) > 1:
        metrics = {**metrics, "read_passages_selection": selection}
    command = "groundqa train decide " + " ".join(
        shlex.quote(a) for a in sys.argv[3:] if a != "--reuse-rows")
    write_model(weights, metrics, out, squad=squad, newsqa=newsqa,
                read_passages=chosen, command=command.strip())
    for count, row in selection["candidates"].items():
        mark = "  <- chosen" if int(count) == chosen else ""
        console.print(f"{count} passages read: mean balanced accuracy "
                      f"{row['balanced_accuracy']:.3f}, mean F1 {row['f1']:.3f}{mark}",
                      highlight=False)
    table = Table("model", "source", "forced F1", "F1", "answer rate", "abstain rate",
                  "balanced acc.", "precision", title="cross-validated on the development "
                  "questions")
    for model, per_source in metrics["cross_validated"].items():
        for source, m in per_source.items():
            if isinstance(m, dict):
                table.add_row(model, source, *(f"{m[k]:.3f}" for k in (
                    "forced_f1", "f1", "answer_rate_answerable", "abstain_rate_unanswerable",
                    "balanced_accuracy", "precision_of_answers")))
    console.print(table)
    console.print(f"threshold: {weights['threshold']:.3f} → {out}", highlight=False)
