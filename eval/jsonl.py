"""Reading JSON-lines input files whose errors name the line (answers, questions, claims, MRQA)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def json_lines(lines: Iterable[str], where: Callable[[int], str],
               error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for every non-blank line; a line that is not JSON raises
    ``error("<where(number)>: not JSON (<reason>)")``."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where(number)}: not JSON ({exc.msg})") from exc
        yield number, value


def json_file(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """``json_lines`` over a UTF-8 file, its errors naming ``<path>:<line>``."""
    with open(path, encoding="utf-8") as fh:
        yield from json_lines(fh, lambda number: f"{path}:{number}", error)
