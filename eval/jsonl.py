"""Reading JSON-lines input files whose errors name the line (answers files, MRQA data)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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
