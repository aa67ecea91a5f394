"""A damaged index or version pointer under a running app, and a full disk (issue 14, items
4, 5 and 7): keep serving the last good version, say so in ``/readyz``, log once, and answer
a write that finds no room with 507."""

from __future__ import annotations

import builtins
import errno
import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corpus.errors import IndexCorrupt
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from service.core import QAService
from tests.http.conftest import AppClient, article_documents, assert_error, http_settings

NOTE = {"text": "Ferry timetable changes in winter\n\nThe island ferry will sail four times a "
                "day from November instead of six, the operator said on Friday.",
        "doc_id": "ferry-2024", "title": "Ferry timetable", "outlet": "Island News",
        "published": "2024-10-04"}


@pytest.fixture
def own_service(http_index: Path, service: QAService, tmp_path: Path) -> QAService:
    """A service on its own copy of the index (the models shared with the session's)."""
    data_dir = tmp_path / "data"
    shutil.copytree(http_index, data_dir)
    return QAService(http_settings(data_dir), HashEmbedder(), checker=service.checker,
                     reader=service.reader, decision_model=service.decision_model)


def _search_versions(client: Any, times: int) -> set[str]:
    versions = set()
    for _ in range(times):
        response = client.post("/v1/search", json={"query": "harbour repairs cost"})
        assert response.status_code == 200, response.text
        assert response.json()["passages"]
        versions.add(response.json()["index_version"])
    return versions


def _damage_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and "keeps serving" in r.getMessage()]


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00\x81garbage\n", b"v000099\n",
                                     b"../../../etc\n"])
def test_a_bad_pointer_keeps_the_last_good_version(own_service: QAService,
                                                   make_client: AppClient,
                                                   caplog: pytest.LogCaptureFixture,
                                                   pointer: bytes) -> None:
    client = make_client(own_service)
    live = client.get("/readyz").json()["index_version"]
    (own_service.settings.data_dir / "CURRENT").write_bytes(pointer)
    with caplog.at_level(logging.WARNING):
        assert _search_versions(client, 20) == {live}
        ask = client.post("/v1/ask", json={"question": "How much did the harbour repairs cost?"})
        assert ask.status_code == 200 and ask.json()["index_version"] == live
        ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded" and body["index_version"] == live
    assert body["problem"]["code"] == "index_corrupt"
    assert "CURRENT" in body["problem"]["message"] or "v000099" in body["problem"]["message"]
    assert len(_damage_messages(caplog)) == 1  # logged once, not per request

    (own_service.settings.data_dir / "CURRENT").write_text(f"{live}\n")  # the operator fixes it
    assert _search_versions(client, 2) == {live}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "problem" not in client.get("/readyz").json()


def test_a_damaged_new_version_is_refused_at_hot_reload(own_service: QAService,
                                                        make_client: AppClient,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    client = make_client(own_service)
    live = client.get("/readyz").json()["index_version"]
    data_dir = own_service.settings.data_dir
    # Another process publishes a version whose sentence vectors were then damaged on disk.
    new = IndexWriter(data_dir, HashEmbedder()).apply(
        delete=[article_documents()[0].doc_id]).version
    vectors = data_dir / "versions" / str(new) / "sentences.npy"
    np.save(vectors, np.random.default_rng(5).random(np.load(vectors).shape, dtype=np.float32))
    with caplog.at_level(logging.WARNING):
        assert _search_versions(client, 10) == {live}
        body = client.get("/readyz").json()
    assert body["status"] == "degraded" and body["index_version"] == live
    assert "checksum" in body["problem"]["message"] and str(new) in body["problem"]["message"]
    assert len(_damage_messages(caplog)) == 1

    # Writing on top of the damaged version is refused too; once the operator points CURRENT
    # back at the good version, the next change is published and served, the problem gone.
    assert_error(client.post("/v1/documents", json=NOTE), 503, "index_corrupt")
    (data_dir / "CURRENT").write_text(f"{live}\n")
    added = client.post("/v1/documents", json=NOTE)
    assert added.status_code == 200, added.text
    body = client.get("/readyz").json()
    assert body == {**body, "status": "ready", "index_version": added.json()["index_version"]}
    assert "problem" not in body


def test_a_bad_pointer_at_start_is_index_corrupt(http_index: Path, service: QAService,
                                                 tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(http_index, data_dir)
    (data_dir / "CURRENT").write_bytes(b"\xff\xfe\x00\x81garbage\n")
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        QAService(http_settings(data_dir), HashEmbedder(), checker=service.checker,
                  reader=service.reader, decision_model=service.decision_model)


def test_a_full_disk_is_507_and_changes_nothing(own_service: QAService, make_client: AppClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(own_service)
    before = client.get("/v1/documents").json()
    data_dir = str(own_service.settings.data_dir)
    real_open = builtins.open

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wx") and isinstance(file, str | os.PathLike) and \
                os.path.abspath(os.fspath(file)).startswith(data_dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", full_open)
        patch.setattr(io, "open", full_open)
        body = assert_error(client.post("/v1/documents", json=NOTE), 507,
                            "insufficient_storage")
        assert "full" in body["error"]["message"]
        assert_error(client.delete("/v1/documents/harbour-2024"), 507, "insufficient_storage")
    assert client.get("/v1/documents").json() == before
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.post("/v1/documents", json=NOTE).status_code == 200
