"""The pieces both training loops (reader and checker) share: parameter groups, the learning-
rate schedule, checkpoints and resuming, on a tiny torch model."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from eval.reader_train import (  # noqa: E402 - after the torch check
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
