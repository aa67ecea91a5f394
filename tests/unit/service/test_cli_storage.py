"""The CLI on a full disk and on a damaged version pointer: one line, a non-zero exit, no
traceback, nothing indexed changed (issue 14, items 5 and 7)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from tests.unit.index.sample import ALPHA

BODY = "The council approved the new budget on Tuesday after a long debate in the chamber.\n"


def _run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from service.cli import main

    monkeypatch.setattr(sys, "argv", ["groundqa", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0), capsys.readouterr().err


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_ingest_on_a_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    IndexWriter(data_dir, HashEmbedder()).apply(add=[ALPHA])
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "budget.txt").write_text(BODY)
    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    real_open = builtins.open

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wx") and isinstance(file, str | os.PathLike) and \
                os.path.abspath(os.fspath(file)).startswith(str(data_dir)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(io, "open", full_open)
    code, stderr = _run_cli(["ingest", str(articles), "--data-dir", str(data_dir)],
                            monkeypatch, capsys)
    assert code == 2
    assert "is full" in _one_line_error(stderr)
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", [["serve"], ["index", "info"], ["documents", "list"]])
def test_a_garbage_pointer_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str],
                                       command: list[str]) -> None:
    data_dir = tmp_path / "data"
    IndexWriter(data_dir, HashEmbedder()).apply(add=[ALPHA])
    (data_dir / "CURRENT").write_bytes(b"\xff\xfe\x00\x81garbage\n")
    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    code, stderr = _run_cli([*command, "--data-dir", str(data_dir)], monkeypatch, capsys)
    assert code == 2
    assert "CURRENT" in _one_line_error(stderr)
