"""Continued training (a reader stage started from an earlier one) and recalibrating the
checker without retraining: what they record and what they refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import eval.checker_bench as checker_bench
from eval import checker_train, reader_train
from eval.train_common import app


def test_a_continued_reader_records_every_stage_and_prints_their_commands(
        tmp_path: Path) -> None:
    assert reader_train._earlier_stages(tmp_path) == []
    first = {"command": "groundqa train reader --epochs 4", "hyperparameters": {"lr": 1e-4},
             "training": {"steps": 940, "minutes": 93.9}, "null_threshold": {"value": 2.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(first))
    stages = reader_train._earlier_stages(tmp_path)
    assert stages == [{"command": first["command"], "hyperparameters": {"lr": 1e-4},
                       "training": first["training"]}]
    second = {"command": "groundqa train reader --init-from best.pt --epochs 2",
              "earlier_stages": stages, "training": {"steps": 470, "minutes": 47.0}}
    lines = reader_train._commands(second).splitlines()
    assert lines == ["# stage 1: 940 steps, 93.9 min; the next stage starts from its "
                     "--work-dir best.pt", first["command"], "# stage 2: 470 steps, 47.0 min",
                     second["command"]]
    (tmp_path / "metrics.json").write_text(json.dumps(second))
    assert len(reader_train._earlier_stages(tmp_path)) == 2
    assert reader_train._commands(first) == first["command"]


def test_recalibrating_needs_a_shipped_checker_in_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["checker", "--data-dir", str(tmp_path), "--calibrate-only",
                                      "--out", str(tmp_path / "empty"),
                                      "--work-dir", str(tmp_path / "work")],
                             env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "has no model.onnx and metrics.json to recalibrate" in result.output
    assert not (tmp_path / "work").exists()


def test_recalibrating_keeps_the_training_record(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "checker"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"onnx")
    training = {"command": "groundqa train checker --epochs 3", "training": {"steps": 2799},
                "limits": "Short of the targets.", "benchmark": {"old": 1}, "timing": {"old": 1}}
    (out / "metrics.json").write_text(json.dumps(training))
    seen: dict[str, Any] = {}

    def fake(out_dir: Path, fp32: Path | None, data: Any, threads: int,
             meta: dict[str, Any]) -> dict[str, Any]:
        seen.update(out=out_dir, fp32=fp32, meta=meta)
        return {**meta, "benchmark": {"new": 1}}

    monkeypatch.setattr(checker_bench, "calibrate_and_benchmark", fake)
    checker_train._recalibrate(out, tmp_path / "work", object(), 2, Path("data"), 0.0)
    written = json.loads((out / "metrics.json").read_text())
    assert seen["fp32"] is None  # no fp32 file in the work dir: no int8/fp32 comparison
    assert written["command"] == training["command"]
    assert written["training"] == {"steps": 2799} and written["limits"] == training["limits"]
    assert written["benchmark"] == {"new": 1} and "timing" not in written
    assert written["calibration_command"].startswith("groundqa train checker")
