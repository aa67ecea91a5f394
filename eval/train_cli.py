"""`groundqa train …`: reproduce the shipped models (span reader, decision model, checker)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from eval import checker_train  # noqa: F401 - registers `groundqa train checker`
from eval.reader_train import app

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
    read_passages: Annotated[int, typer.Option("--read-passages", min=1, max=20,
                                               help="Retrieved passages the reader reads.")] = 5,
    limit: Annotated[int | None, typer.Option("--limit", min=10, help="Smoke runs: at most "
                                              "this many questions.")] = None,
) -> None:
    """Fit the answer-or-abstain model and its threshold on the reader's development data."""
    import logging

    from eval.decide_fit import collect, fit, write_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with console.status("asking the calibration questions"):
        rows = collect(squad, newsqa, data_dir, read_passages, limit)
    if len({r.right for r in rows}) < 2:
        console.print("error: the calibration questions gave only one label; nothing to fit")
        raise typer.Exit(code=2)
    weights, metrics = fit(rows)
    command = "groundqa train decide " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    write_model(weights, metrics, out, squad=squad, newsqa=newsqa,
                read_passages=read_passages, command=command.strip())
    for name, value in metrics.items():
        console.print(f"{name}: {value:.3f}", highlight=False)
    console.print(f"threshold: {weights['threshold']:.3f} → {out}", highlight=False)
