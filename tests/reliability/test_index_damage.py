"""A running server whose data directory is damaged under it (issue 14, items 4 and 5).

Garbage in CURRENT gave HTTP 500 on 8 of 40 asks and a pointer to a missing version 503; a
version with overwritten vector bytes was served silently. Here 40 concurrent asks after each
kind of damage must all answer from the last good version, and ``/readyz`` must say what is
wrong until the operator fixes it.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.conftest import copy_index, run_server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

QUESTION = "How big a grant did Russia promise Tajikistan for a border outpost?"


def _publish_damaged_copy(data_dir: Path, live: str) -> str:
    """A new version (a copy of the live one) whose vectors have 64 bytes overwritten."""
    import shutil

    name = f"v{int(live[1:]) + 1:06d}"
    target = data_dir / "versions" / name
    shutil.copytree(data_dir / "versions" / live, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(version=name, previous=live)
    (target / "manifest.json").write_text(json.dumps(manifest))
    vectors = target / "vectors.faiss"
    data = bytearray(vectors.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    vectors.write_bytes(bytes(data))
    (data_dir / "CURRENT").write_text(f"{name}\n")
    return name


@pytest.mark.parametrize("damage", ["garbage-pointer", "missing-version", "damaged-vectors"])
def test_asks_keep_answering_from_the_last_good_version(seed_index_dir: Path, tmp_path: Path,
                                                        damage: str) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    with run_server(data_dir, tmp_path / "server.log") as server, server.client() as client:
        live = client.get("/readyz").json()["index_version"]
        if damage == "garbage-pointer":
            (data_dir / "CURRENT").write_bytes(b"\xff\xfe\x00\x81garbage\n")
            refused = "CURRENT"
        elif damage == "missing-version":
            (data_dir / "CURRENT").write_text("v000099\n")
            refused = "v000099"
        else:
            refused = _publish_damaged_copy(data_dir, live)

        def ask(_: int) -> tuple[int, str | None]:
            response = client.post("/v1/ask", json={"question": QUESTION})
            return response.status_code, response.json().get("index_version")

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(ask, range(40)))
        assert results == [(200, live)] * 40
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded" and body["index_version"] == live
        assert refused in body["problem"]["message"], body

        (data_dir / "CURRENT").write_text(f"{live}\n")  # the operator points back
        assert ask(0) == (200, live)
        # The pointer is re-read every reload interval (0.5 s by default): ready by then.
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["status"] != "ready":
            assert time.monotonic() < deadline, "still degraded after the pointer was fixed"
            time.sleep(0.2)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert log.count("keeps serving") == 1, log[-3000:]  # logged once, not per request
