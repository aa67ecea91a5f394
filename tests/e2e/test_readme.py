"""Every fenced block in README.md runs as written against a live server on the demo corpus.

``bash`` blocks run in bash (``set -euo pipefail``) from the repository root, ``python`` blocks
in the venv's Python, both with ``GROUNDQA_URL`` naming the test's server (the README's examples
read the address from it, as the CLI does). The ``json`` answer example is compared with the
live answer to the same question; the CLI synopsis (a block with no language) is checked
against each command's ``--help``. A block that cannot run here carries
``<!-- not-tested: reason -->`` on the line before it and is reported as skipped with that
reason, so nothing is left out silently; a block of any other kind fails the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import REPO, Server, copy_index, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

README = REPO / "README.md"
NOT_TESTED = re.compile(r"^<!--\s*not-tested:\s*(.+?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
BLOCK_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Block:
    """A fenced block of the README: its language, text, line and not-tested reason."""

    language: str
    text: str
    line: int
    not_tested: str | None

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language or 'plain'}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"README.md line {i + 1}: unclosed ``` block"
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        reason = NOT_TESTED.match(before)
        blocks.append(Block(opening.group(1), "\n".join(lines[i + 1:end]), i + 1,
                            reason.group(1) if reason else None))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_the_examples_this_test_expects() -> None:
    # Guards the extraction itself: a change that hid every block would otherwise pass.
    languages = [b.language for b in BLOCKS if b.not_tested is None]
    assert languages.count("bash") >= 1 and "python" in languages and "json" in languages
    assert "" in languages  # the CLI synopsis
    assert any(b.not_tested for b in BLOCKS)


@pytest.fixture(scope="module")
def readme_server(seed_index_dir: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """groundqa on a copy of the demo index, no API key (as a new user runs it)."""
    root = tmp_path_factory.mktemp("readme")
    with run_server(copy_index(seed_index_dir, root / "data"), root / "server.log") as server:
        yield server


def _environment(server: Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    env["GROUNDQA_URL"] = server.url
    env["GROUNDQA_DATA_DIR"] = str(server.data_dir)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(command: list[str], server: Server) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=REPO, env=_environment(server), text=True,
                            capture_output=True, timeout=BLOCK_TIMEOUT_SECONDS)
    assert result.returncode == 0, \
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n" \
        f"--- stderr\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), "the example printed nothing"
    return result


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _check_answer_example(block: Block, server: Server) -> None:
    """The README's example answer is what the server answers to that question."""
    question = re.search(r'"question": "([^"]+)"', block.text)
    assert question, "the answer example names its question"
    live = httpx.post(server.url + "/v1/ask", json={"question": question.group(1)},
                      timeout=60).json()
    documented = set(re.findall(r'"([a-z_]+)":', block.text))
    assert documented <= _keys(live), documented - _keys(live)
    short = re.search(r'"short_answer": \{"text": "([^"]+)"', block.text)
    assert short and live["short_answer"]["text"] == short.group(1)
    answer = re.search(r'"answer": "((?:[^"\\]|\\.)*)"', block.text)
    assert answer and live["answer"] == json.loads(f'"{answer.group(1)}"')
    for field in ("answerable", "answer_type", "generator"):
        value = re.search(rf'"{field}": ("[^"]*"|true|false)', block.text)
        assert value and live[field] == json.loads(value.group(1)), field


def _check_cli_synopsis(block: Block) -> None:
    """Each command the synopsis lists exists, with every option it shows."""
    from typer.main import get_command

    from service import cli

    cli._load_plugins()
    root = get_command(cli.app)
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.text.splitlines():
        code = line.split("#", 1)[0]
        options = re.findall(r"(--[a-z][a-z0-9-]*)", code)
        if code.startswith("groundqa "):
            # "documents list | delete ID", "bench ingest|query": one command per alternative.
            paths: list[list[str]] = [[]]
            alternative = False
            for word in code.split()[1:]:
                if word == "|":
                    alternative = True
                    continue
                if not re.fullmatch(r"[a-z]+(\|[a-z]+)*", word):
                    break
                if alternative:
                    paths.append(paths[-1][:-1] + [word])
                    alternative = False
                else:
                    paths = [p + [a] for p in paths for a in word.split("|")]
            commands.extend((path, options) for path in paths)
        elif code.strip() and commands:
            commands[-1][1].extend(options)  # a continuation line
    assert len(commands) >= 10
    for path, options in commands:
        command: Any = root
        for name in path:
            command = command.commands.get(name) if hasattr(command, "commands") else None
            assert command is not None, f"no command `groundqa {' '.join(path)}`"
        known = {opt for param in command.params
                 for opt in [*param.opts, *getattr(param, "secondary_opts", [])]}
        missing = set(options) - known
        assert not missing, f"`groundqa {' '.join(path)}` has no {sorted(missing)}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_example_runs(block: Block, request: pytest.FixtureRequest) -> None:
    if block.not_tested:
        pytest.skip(f"README.md line {block.line} not-tested: {block.not_tested}")
    if block.language == "":
        _check_cli_synopsis(block)
        return
    server: Server = request.getfixturevalue("readme_server")
    if block.language == "bash":
        result = _run(["bash", "-euo", "pipefail", "-c", block.text], server)
        assert '"error": {' not in result.stdout, result.stdout[-2000:]
        assert not re.search(r"^error:", result.stderr, re.M), result.stderr
    elif block.language == "python":
        _run([sys.executable, "-c", block.text], server)
    elif block.language == "json":
        _check_answer_example(block, server)
    else:
        pytest.fail(f"README.md line {block.line}: a ```{block.language} block this test "
                    "cannot run: teach it, or mark the block <!-- not-tested: reason -->")
