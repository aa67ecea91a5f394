"""Damage and hostile state in a data directory: checksums, the version pointer, a full disk,
and pruning by publication (issue 14, items 4, 5, 7 and 8)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corpus.errors import IndexCorrupt, InsufficientStorage
from index.embedding import HashEmbedder
from index.ingest import IndexWriter
from index.store import DataDir, IndexSnapshot
from index.store import embedded_writer as writer_module
from tests.unit.index.sample import ALPHA, BRAVO, CHARLIE, assert_consistent, make_doc, versions
from tests.unit.index.store.test_embedded import _CHILD, REPO_ROOT

# ---------------------------------------------------------------------------------------------
# Item 4: checksums of every file of a version, verified when it is opened


def _version_dir(data_dir: Path) -> Path:
    return data_dir / "versions" / str(DataDir(data_dir).current_version())


def _overwrite_middle(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes((b ^ 0x5A) for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def _random_sentence_vectors(path: Path) -> None:
    shape = np.load(path).shape
    np.save(path, np.random.default_rng(3).random(shape, dtype=np.float32))


def _permute_vectors(path: Path) -> None:
    import faiss

    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map)  # type: ignore[attr-defined]
    vectors = np.stack([index.reconstruct(int(i)) for i in ids])
    permuted = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
    permuted.add_with_ids(vectors[::-1].copy(), ids)
    faiss.write_index(permuted, str(path))


def _flip_bm25(path: Path) -> None:
    target = max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    _overwrite_middle(target, 8)


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "64 bytes of vectors.faiss": ("vectors.faiss", _overwrite_middle),
    "sentences.npy random, same shape": ("sentences.npy", _random_sentence_vectors),
    "vectors permuted": ("vectors.faiss", _permute_vectors),
    "bm25 file": ("bm25", _flip_bm25),
    "meta.sqlite page": ("meta.sqlite", _overwrite_middle),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_refused_at_open(writer: IndexWriter, data_dir: Path,
                                           hash_embedder: HashEmbedder, damage: str) -> None:
    writer.apply(add=[ALPHA, BRAVO])
    name, damage_file = DAMAGE[damage]
    damage_file(_version_dir(data_dir) / name)
    with pytest.raises(IndexCorrupt, match=r"v000001.*checksum") as raised:
        IndexSnapshot.open(data_dir, hash_embedder)
    assert name in raised.value.message


def test_an_intact_version_opens_and_records_its_checksums(writer: IndexWriter, data_dir: Path,
                                                           hash_embedder: HashEmbedder) -> None:
    writer.apply(add=[ALPHA])
    writer.apply(add=[BRAVO], delete=["alpha"])
    snapshot = IndexSnapshot.open(data_dir, hash_embedder)
    files = snapshot.manifest["checksums"]["files"]
    assert {"meta.sqlite", "vectors.faiss", "sentences.npy"} <= set(files)
    assert any(name.startswith("bm25/") for name in files)
    assert_consistent(snapshot)


def test_a_writer_refuses_to_build_on_a_damaged_version(writer: IndexWriter, data_dir: Path
                                                        ) -> None:
    writer.apply(add=[ALPHA])
    _random_sentence_vectors(_version_dir(data_dir) / "sentences.npy")
    with pytest.raises(IndexCorrupt, match="checksum"):
        writer.apply(add=[BRAVO])
    assert versions(data_dir) == ["v000001"]


def test_a_version_without_checksums_still_opens(writer: IndexWriter, data_dir: Path,
                                                 hash_embedder: HashEmbedder) -> None:
    """Versions written before checksums existed keep being served."""
    import json

    writer.apply(add=[ALPHA])
    manifest_path = _version_dir(data_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["checksums"]
    manifest_path.write_text(json.dumps(manifest))
    assert IndexSnapshot.open(data_dir, hash_embedder).document_count == 1


# ---------------------------------------------------------------------------------------------
# Item 5: the version pointer is validated


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00\x81garbage\n", b"v000001\x00\n",
                                     b"../../etc\n", b"v1/../v000001\n", b"   \t\n" * 3,
                                     b"v000001\nv000002\n", b"x" * 5000])
def test_a_garbage_pointer_is_index_corrupt(writer: IndexWriter, data_dir: Path,
                                            hash_embedder: HashEmbedder, pointer: bytes) -> None:
    writer.apply(add=[ALPHA])
    (data_dir / "CURRENT").write_bytes(pointer)
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        DataDir(data_dir).current_version()
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        IndexSnapshot.open(data_dir, hash_embedder)


def test_a_pointer_outside_the_data_dir_is_refused(writer: IndexWriter, data_dir: Path,
                                                   tmp_path: Path,
                                                   hash_embedder: HashEmbedder) -> None:
    other = tmp_path / "other"
    IndexWriter(other, hash_embedder).apply(add=[CHARLIE])
    writer.apply(add=[ALPHA])
    (data_dir / "CURRENT").write_text(f"{other / 'versions' / 'v000001'}\n")
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        IndexSnapshot.open(data_dir, hash_embedder)


def test_a_symlinked_version_leading_outside_is_refused(writer: IndexWriter, data_dir: Path,
                                                        tmp_path: Path,
                                                        hash_embedder: HashEmbedder) -> None:
    other = tmp_path / "other"
    IndexWriter(other, hash_embedder).apply(add=[CHARLIE])
    writer.apply(add=[ALPHA])
    (data_dir / "versions" / "v000009").symlink_to(other / "versions" / "v000001")
    (data_dir / "CURRENT").write_text("v000009\n")
    with pytest.raises(IndexCorrupt, match="outside"):
        IndexSnapshot.open(data_dir, hash_embedder)


# ---------------------------------------------------------------------------------------------
# Item 7: a full disk


class _FullDisk:
    """Files opened for writing under ``root`` fail with ENOSPC once ``room`` bytes are used."""

    def __init__(self, root: Path, room: int) -> None:
        self.root = str(root)
        self.room = room
        self.real_open = builtins.open

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = self.real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, str | os.PathLike) and \
                os.path.abspath(os.fspath(file)).startswith(self.root):
            return _LimitedFile(handle, self)
        return handle


class _LimitedFile:
    def __init__(self, handle: Any, disk: _FullDisk) -> None:
        self._handle = handle
        self._disk = disk

    def write(self, data: Any) -> int:
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size > self._disk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.room -= size
        return int(self._handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _LimitedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _fill_disk(monkeypatch: pytest.MonkeyPatch, root: Path, room: int) -> None:
    disk = _FullDisk(root, room)
    monkeypatch.setattr(builtins, "open", disk.open)
    monkeypatch.setattr(io, "open", disk.open)


def _snapshot_of(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes()
            for p in sorted(data_dir.rglob("*")) if p.is_file() and p.name != "writer.lock"}


_BIG = make_doc("big", "\n\n".join(f"Paragraph {i} of the long report on river bridges and "
                                    f"roads number {i}." for i in range(120)))


def _bytes_written_by_an_ingest(data_dir: Path, tmp_path: Path) -> int:
    """What adding BRAVO and _BIG writes through Python files (all but SQLite's own writes)."""
    import shutil

    copy = tmp_path / "measure"
    shutil.copytree(data_dir, copy)
    disk = _FullDisk(copy, 10**12)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", disk.open)
        patch.setattr(io, "open", disk.open)
        IndexWriter(copy, HashEmbedder()).apply(add=[BRAVO, _BIG])
    return 10**12 - disk.room


# Where the disk fills up, as a share of what the ingest writes; "pointer" leaves room for the
# whole version but not for the new CURRENT, so the version is in place but never published.
@pytest.mark.parametrize("fill", [0.0, 0.02, 0.3, 0.9, "pointer"])
def test_a_full_disk_is_insufficient_storage_and_changes_nothing(
        writer: IndexWriter, data_dir: Path, hash_embedder: HashEmbedder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, fill: float | str) -> None:
    writer.apply(add=[ALPHA])
    total = _bytes_written_by_an_ingest(data_dir, tmp_path)
    room = total - 1 if fill == "pointer" else int(total * float(fill))
    before = _snapshot_of(data_dir)
    with monkeypatch.context() as patch:
        _fill_disk(patch, data_dir, room)
        with pytest.raises(InsufficientStorage, match="disk .* is full"):
            writer.apply(add=[BRAVO, _BIG])
    assert _snapshot_of(data_dir) == before  # no temporaries, no half version, same CURRENT
    assert_consistent(IndexSnapshot.open(data_dir, hash_embedder))
    assert writer.apply(add=[BRAVO]).version == "v000002"  # room again: the next write works


def test_a_full_disk_in_sqlite_is_insufficient_storage(writer: IndexWriter, data_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    writer.apply(add=[ALPHA])
    before = _snapshot_of(data_dir)

    def full(*_args: object, **_kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writer_module.VersionWriter, "_write_tables", full)
    with pytest.raises(InsufficientStorage):
        writer.apply(add=[BRAVO])
    assert _snapshot_of(data_dir) == before


# ---------------------------------------------------------------------------------------------
# Item 8: pruning keeps what was published


def _killed_before_publishing(data_dir: Path, tmp_path: Path, round_: int) -> None:
    """Run an ingest in a child and SIGKILL it after its version is in place, before CURRENT."""
    flag = tmp_path / f"flag-{round_}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data_dir), str(flag),
                              "publish"], env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert child.poll() is None, "writer subprocess exited early"
            assert time.monotonic() < deadline, "writer subprocess never reached publishing"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()


def test_two_killed_ingests_then_a_rerun_keep_the_last_published_version(
        writer: IndexWriter, data_dir: Path, hash_embedder: HashEmbedder,
        tmp_path: Path) -> None:
    writer.apply(add=[ALPHA])
    _killed_before_publishing(data_dir, tmp_path, 1)
    _killed_before_publishing(data_dir, tmp_path, 2)
    assert versions(data_dir) == ["v000001", "v000002", "v000003"]
    assert DataDir(data_dir).current_version() == "v000001"
    assert writer.apply(add=[CHARLIE]).version == "v000004"
    # The never-published v000002 and v000003 go; v000001, served until now, stays.
    assert versions(data_dir) == ["v000001", "v000004"]
    old = IndexSnapshot.open(data_dir, hash_embedder, "v000001")
    assert old.has_document("alpha") and not old.has_document("charlie")


def test_pruning_keeps_the_newest_published_versions(writer: IndexWriter, data_dir: Path
                                                     ) -> None:
    for i in range(5):
        writer.apply(add=[make_doc("alpha", f"Version {i} of the alpaca story is here.")])
    (data_dir / "versions" / "v000006").mkdir()  # a version a killed writer never published
    writer.apply(add=[BRAVO])
    # The three newest published versions; the unpublished v000006 goes.
    assert versions(data_dir) == ["v000004", "v000005", "v000007"]
