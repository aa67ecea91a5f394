"""The Docker image, really built and run: non-root, healthy after its start period, answering,
and an empty data volume (named or bind-mounted) seeded with the demo index instead of hiding it.

Opt-in (marker ``reliability``, not in ``make test``): the build takes about 10 minutes on two
cores. Skipped with the daemon's own error when no Docker daemon answers. Extra build
arguments come from ``GROUNDQA_DOCKER_BUILD_ARGS``, e.g. on a machine without Docker Hub:
``--network host --build-arg BASE_IMAGE=<a local Python 3.11 image> --build-arg
TORCH_INDEX=<a reachable CPU wheel mirror>``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

IMAGE = "groundqa:test"
QUESTION = "How big a grant did Russia promise Tajikistan for a border outpost?"


def _docker(*args: str, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], text=True, capture_output=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (apt-get install docker.io)")
    info = _docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if info.returncode != 0:
        pytest.skip(f"no Docker daemon: {info.stderr.strip().splitlines()[-1:]}")
    extra = shlex.split(os.environ.get("GROUNDQA_DOCKER_BUILD_ARGS", ""))
    _docker("build", *extra, "-t", IMAGE, str(REPO), timeout=3600)
    return IMAGE


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of the containers a test starts; removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        _docker("rm", "-f", name, check=False)


def _run(image: str, containers: list[str], volume: str, port: int | None = None) -> str:
    name = f"groundqa-test-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    publish = ["-p", f"127.0.0.1:{port}:8000"] if port else []
    _docker("run", "-d", "--name", name, *publish, "-v", f"{volume}:/data", image)
    return name


def _wait_healthy(name: str, timeout: float = 240) -> list[str]:
    """The health states seen until ``healthy`` (fails on ``unhealthy`` or an exit)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(_docker("inspect", "--format", "{{json .State}}", name).stdout)
        assert state["Running"], _docker("logs", name).stderr
        status = state["Health"]["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "healthy":
            return seen
        assert status != "unhealthy", _docker("logs", name).stderr
        time.sleep(2)
    pytest.fail(f"not healthy after {timeout} s: {seen}")


def test_empty_bind_mount_is_seeded_and_the_api_answers(image: str, containers: list[str],
                                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0:
        os.chown(data, 10001, -1)  # the container's user
    else:
        data.chmod(0o777)
    port = free_port()
    name = _run(image, containers, str(data), port)
    assert _wait_healthy(name)[0] == "starting"  # the start period, then healthy
    logs = _docker("logs", name)
    assert "is empty: starting it with a copy of the demo index" in logs.stdout + logs.stderr
    assert (data / "CURRENT").exists()
    assert _docker("exec", name, "id", "-u").stdout.strip() == "10001"
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
    body = httpx.post(base + "/v1/ask", json={"question": QUESTION}, timeout=120).json()
    assert body["answerable"] and body["short_answer"]["text"] == "$100 million"
    assert len(httpx.get(base + "/v1/documents", timeout=10).json()["documents"]) == 5


def test_a_volume_with_an_index_is_served_as_it_is(image: str, containers: list[str]) -> None:
    volume = f"groundqa-test-{uuid.uuid4().hex[:8]}"
    try:
        first = _run(image, containers, volume)
        _wait_healthy(first)
        _docker("rm", "-f", first)
        second = _run(image, containers, volume)
        _wait_healthy(second)
        logs = _docker("logs", second)
        assert "copy of the demo index" not in logs.stdout + logs.stderr
    finally:
        for name in containers:
            _docker("rm", "-f", name, check=False)
        _docker("volume", "rm", volume, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a folder the container's user cannot "
                                              "write: run as root")
def test_unwritable_bind_mount_exits_2_with_one_line(image: str, tmp_path: Path) -> None:
    data = tmp_path / "root-owned"
    data.mkdir(mode=0o755)
    result = _docker("run", "--rm", "-v", f"{data}:/data", image, check=False, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "groundqa: cannot write the demo index to /data: the volume must be writable by uid "
        "10001 (chown 10001 on the host directory)"]
