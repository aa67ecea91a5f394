"""The pieces both training loops (reader and checker) share: parameter groups, the learning-
rate schedule, checkpoints and resuming, on a tiny torch model."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from eval.train_common import (  # noqa: E402 - after the torch check
    TrainingRun,
    decay_groups,
    linear_schedule,
    resume_from,
    save_checkpoint,
)


class _Tiny(torch.nn.Module):  # type: ignore[misc,name-defined]
    def __init__(self) -> None:
        super().__init__()
        self.dense = torch.nn.Linear(3, 2)
        self.LayerNorm = torch.nn.LayerNorm(2)

    def forward(self, x: object) -> object:
        return self.LayerNorm(self.dense(x))


def test_biases_and_norms_get_no_weight_decay() -> None:
    groups = decay_groups(list(_Tiny().named_parameters()), 0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    assert [len(g["params"]) for g in groups] == [1, 3]  # dense.weight | biases, norm weight


def test_schedule_warms_up_then_decays_to_zero() -> None:
    model = _Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = linear_schedule(optimizer, total=10, warmup=2)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[3:] == pytest.approx([(10 - s) / 8 for s in range(3, 10)])
    assert scheduler.get_last_lr()[0] == 0.0


def test_a_resumed_run_continues_where_the_checkpoint_left_off(tmp_path: Path) -> None:
    model = _Tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = linear_schedule(optimizer, total=10, warmup=2)
    for _ in range(3):
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
    record = {"epoch": 1, "step_in_epoch": 3, "global_step": 3}
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, optimizer, scheduler, record)

    fresh = _Tiny()
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    fresh_scheduler = linear_schedule(fresh_optimizer, total=10, warmup=2)
    start = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
    assert resume_from(tmp_path / "none.pt", fresh, fresh_optimizer, fresh_scheduler,
                       start) is start
    assert resume_from(path, fresh, fresh_optimizer, fresh_scheduler, start) == record
    assert torch.equal(fresh.dense.weight, model.dense.weight)
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 3


HP = {"lr": 0.05, "batch_size": 2, "epochs": 2, "warmup": 0.1, "bf16": False, "weight_decay": 0.0}
ROWS = 6  # three batches an epoch, six steps in all


def _batches(epoch: int) -> list[list[int]]:
    return [[0, 1], [2, 3], [4, 5]]


def _loss(model: _Tiny) -> object:
    inputs = torch.arange(18, dtype=torch.float32).reshape(6, 3) / 18

    def step_loss(rows: list[int]) -> tuple[object, int]:
        return model(inputs[rows]).pow(2).sum(), 0
    return step_loss


def _start(model: _Tiny, tmp_path: Path, resume: bool = False, **hp: object) -> TrainingRun:
    return TrainingRun.start(model, [{"params": list(model.parameters())}], ROWS,
                             {**HP, **hp}, tmp_path, resume, "examples")


def test_a_training_run_steps_through_every_epoch_and_calls_its_hooks(tmp_path: Path) -> None:
    model = _Tiny()
    before = model.dense.weight.detach().clone()
    run = _start(model, tmp_path)
    steps, epochs = [], []
    assert run.run(_batches, _loss(model), after_step=lambda: steps.append(
        run.record["global_step"]), after_epoch=lambda: epochs.append(run.record["epoch"])) is None
    record = run.finish()
    assert steps == [1, 2, 3, 4, 5, 6]
    assert epochs == [1, 2]
    assert record["finished"] and record["total_steps"] == 6 and record["global_step"] == 6
    assert not torch.equal(model.dense.weight, before)
    assert (tmp_path / "last.pt").is_file()
    run.keep_best()
    assert record["best_step"] == 6 and (tmp_path / "best.pt").is_file()


def test_a_stopped_run_resumes_at_its_step_and_ends_like_an_unbroken_one(
        tmp_path: Path) -> None:
    torch.manual_seed(0)
    whole = _Tiny()
    torch.manual_seed(0)
    halves = _Tiny()
    first = _start(halves, tmp_path)
    seen: list[int] = []

    def stop_at_four() -> None:
        seen.append(first.record["global_step"])
        if first.record["global_step"] == 4:
            first.record["finished"] = True  # what the time limit does
            first.checkpoint()
    first.run(_batches, _loss(halves), after_step=stop_at_four)
    assert seen == [1, 2, 3, 4]

    second = _start(halves, tmp_path, resume=True)
    second.record["finished"] = False
    assert (second.record["epoch"], second.record["step_in_epoch"]) == (1, 1)
    second.run(_batches, _loss(halves))
    assert second.record["global_step"] == 6

    reference = _start(whole, tmp_path / "whole")
    (tmp_path / "whole").mkdir()
    reference.run(_batches, _loss(whole))
    assert torch.allclose(halves.dense.weight, whole.dense.weight, atol=1e-6)


def test_measuring_stops_early_and_reports_throughput(tmp_path: Path) -> None:
    model = _Tiny()
    run = _start(model, tmp_path)
    measured = run.run(_batches, _loss(model), measure_steps=2)
    assert measured is not None
    assert measured["steps"] == 2 and measured["examples_per_epoch"] == ROWS
    assert measured["examples_per_s"] > 0
    assert run.record["global_step"] == 2
