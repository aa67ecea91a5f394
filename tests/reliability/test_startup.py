"""Startup with a missing, partial or foreign index: fail fast in one line, or serve empty.

``groundqa serve`` checks the index before uvicorn starts (no model load, so these are quick);
``uvicorn service.asgi:app`` started directly fails in its lifespan, reported in one line by
``OneLineStartupFailure``. Neither may print a Python traceback. With
``GROUNDQA_ON_MISSING_INDEX=empty`` a missing index is served as an empty one instead.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from corpus.loader import Document
from index.embedding import DEFAULT_MODEL_NAME, HashEmbedder
from index.ingest import IndexWriter
from tests.reliability.conftest import copy_index, free_port, run_server, server_env

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def _version(data_dir: Path) -> Path:
    return data_dir / "versions" / (data_dir / "CURRENT").read_text().strip()


def _edit_manifest(data_dir: Path, **changes: object) -> None:
    path = _version(data_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def _other_dimension(data_dir: Path) -> None:
    """An index that claims the MiniLM name but holds 32-d vectors."""
    shutil.rmtree(data_dir)
    doc = Document(doc_id="d1", text="Border guards reported militants near the river on "
                   "Friday, officials said.", title="t", outlet="o", published="2024")
    IndexWriter(data_dir, HashEmbedder(dimension=32, name=DEFAULT_MODEL_NAME)).apply(add=[doc])


def _truncate(name: str) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path = _version(data_dir) / name
        path.write_bytes(path.read_bytes()[:100])
    return damage


def _overwrite(name: str) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:  # still parses: only a checksum can tell
        path = _version(data_dir) / name
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
        path.write_bytes(bytes(data))
    return damage


def _random_sentences(data_dir: Path) -> None:
    path = _version(data_dir) / "sentences.npy"
    np.save(path, np.random.default_rng(1).random(np.load(path).shape, dtype=np.float32))


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda d: shutil.rmtree(d) or d.mkdir(), "groundqa ingest"),
    "current-names-a-missing-version": (
        lambda d: (d / "CURRENT").write_text("v000042\n"), "groundqa ingest"),
    "no-manifest": (lambda d: (_version(d) / "manifest.json").unlink(), "groundqa ingest"),
    "no-vectors": (lambda d: (_version(d) / "vectors.faiss").unlink(), "rebuild"),
    "no-bm25": (lambda d: shutil.rmtree(_version(d) / "bm25"), "rebuild"),
    "manifest-not-json": (
        lambda d: (_version(d) / "manifest.json").write_text("{not json"), "rebuild"),
    "manifest-a-list": (
        lambda d: (_version(d) / "manifest.json").write_text("[1, 2]"), "rebuild"),
    "vectors-garbage": (
        lambda d: (_version(d) / "vectors.faiss").write_bytes(b"\x00garbage" * 100), "rebuild"),
    "sqlite-truncated": (_truncate("meta.sqlite"), "rebuild"),
    "sentences-truncated": (_truncate("sentences.npy"), "rebuild"),
    "current-garbage": (
        lambda d: (d / "CURRENT").write_bytes(b"\xff\xfe\x00garbage\n"), "CURRENT"),
    "current-outside": (lambda d: (d / "CURRENT").write_text("/etc\n"), "CURRENT"),
    "vectors-64-bytes-overwritten": (_overwrite("vectors.faiss"), "checksum"),
    "sentences-same-shape-random": (_random_sentences, "checksum"),
    "other-format": (lambda d: _edit_manifest(d, format=99), "rebuild"),
    "other-model": (lambda d: _edit_manifest(d, model="intfloat/e5-small-v2"), "rebuild"),
    "other-dimension": (_other_dimension, "rebuild"),
}


def _one_line_failure_problem(returncode: int, stdout: str, stderr: str, hint: str) -> str:
    """Why this is not a one-line failure with ``hint`` (empty when it is)."""
    output = stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if returncode == 0:
        return f"exit code 0: {output[-500:]}"
    if "Traceback" in output or 'File "' in output:
        return f"traceback: {output[-1500:]}"
    if len(lines) != 1 or not lines[0].startswith("error: ") or hint not in lines[0]:
        return f"not one 'error: ...{hint}...' line: {output[-800:]}"
    return ""


def test_serve_fails_fast_in_one_line(seed_index_dir: Path, tmp_path: Path) -> None:
    """Every broken index at once (short-lived processes, started together to save time)."""
    groundqa = Path(sys.executable).with_name("groundqa")
    runs = {}
    for case, (damage, _hint) in sorted(BROKEN.items()):
        data_dir = copy_index(seed_index_dir, tmp_path / case)
        damage(data_dir)
        runs[case] = subprocess.Popen(
            [str(groundqa), "serve", "--port", str(free_port())], env=server_env(data_dir),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    problems = {}
    for case, process in runs.items():
        try:
            stdout, stderr = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            problems[case] = "still running: it started serving a broken index"
            continue
        problem = _one_line_failure_problem(process.returncode, stdout, stderr, BROKEN[case][1])
        if problem:
            problems[case] = problem
    assert not problems, problems


@pytest.mark.model
@pytest.mark.parametrize("case", ["missing", "other-dimension"])
def test_uvicorn_lifespan_failure_is_one_line(case: str, seed_index_dir: Path,
                                              tmp_path: Path) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    BROKEN[case][0](data_dir)
    run = subprocess.run(
        [sys.executable, "-m", "uvicorn", "service.asgi:app", "--port", str(free_port())],
        env=server_env(data_dir), capture_output=True, text=True, timeout=180)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "Traceback" not in output and 'File "' not in output, output
    failures = [line for line in output.splitlines() if "cannot start groundqa:" in line]
    assert len(failures) == 1, output
    assert "rebuild" in failures[0] or "ingest" in failures[0], failures[0]


@pytest.mark.model
def test_missing_index_served_empty_when_configured(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with run_server(data_dir, tmp_path / "server.log", wait_ready=False, cli=True,
                    on_missing_index="empty") as server, server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        assert client.get("/v1/documents").json() == {"documents": [], "index_version": None}
        body = client.post("/v1/ask", json={"question": "Who closed the embassy?"}).json()
        assert body["answerable"] is False and body["passages"] == []
        assert client.get("/v1/documents/anything").status_code == 404
        added = client.post("/v1/documents", json={
            "text": "Border guards in Khorog said on Friday that the river crossing had been "
                    "closed for repairs until the end of the month.", "doc_id": "khorog"})
        assert added.status_code == 200, added.text
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["documents"] == 1 and ready["index_version"] == "v000001"
    with sqlite3.connect(data_dir / "versions" / "v000001" / "meta.sqlite") as db:
        assert db.execute("SELECT doc_id FROM documents").fetchall() == [("khorog",)]
