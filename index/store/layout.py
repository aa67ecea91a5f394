"""The files of a data directory: where versions live, the live-version pointer, the writer lock.

Layout of a data directory::

    CURRENT                 name of the live version (replaced atomically)
    versions/v000007/       one complete, immutable version (see ``embedded.py``)
    versions/.tmp-…/        a version being written (removed by the next writer if abandoned)
    writer.lock             held by the one writer at a time
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus.errors import IndexBusy

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 3

def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file and directory below ``path`` to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


class DataDir:
    """Paths of a data directory and the pointer to its live version."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.current_file = self.root / "CURRENT"
        self.lock_file = self.root / "writer.lock"

    def current_version(self) -> str | None:
        """Name of the live version, or None when nothing was ever ingested."""
        try:
            name = self.current_file.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def version_path(self, name: str) -> Path:
        """Directory of a version."""
        return self.versions / name

    def set_current(self, name: str) -> None:
        """Atomically point CURRENT at ``name``."""
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex}"
        with open(tmp, "w") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.current_file)
        fsync_dir(self.root)

    def size_on_disk(self, name: str) -> int:
        """Bytes used by one version."""
        path = self.version_path(name)
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    @contextmanager
    def writer_lock(self, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the single-writer lock; raise IndexBusy when another writer has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexBusy(
                            f"another process is writing the index in {self.root}; "
                            "try again when it finishes"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            handle.close()

    # -- versions on disk -------------------------------------------------------------------
    def next_version_name(self) -> str:
        """Name for a new version: one above CURRENT and above every version directory."""
        current = self.current_version()
        # Above every version on disk, not just CURRENT: a writer killed between renaming its
        # version into place and moving CURRENT leaves that directory behind.
        existing = [int(p.name[1:]) for p in self.versions.glob("v*")
                    if p.name[1:].isdigit()]
        version_number = max([int(current[1:]) if current else 0, *existing]) + 1
        return f"v{version_number:06d}"

    def new_temporary(self, name: str) -> Path:
        """A fresh directory to build version ``name`` in, before it is published."""
        tmp = self.versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def publish(self, tmp: Path, name: str) -> None:
        """Rename a finished (fsynced) temporary into place, then point CURRENT at it."""
        os.rename(tmp, self.version_path(name))
        fsync_dir(self.versions)
        self.set_current(name)

    def remove_temporaries(self) -> None:
        """Remove versions a killed writer left unfinished."""
        for path in self.versions.glob(".tmp-*"):
            logger.info("removing unfinished index version %s", path.name)
            shutil.rmtree(path, ignore_errors=True)

    def remove_old_versions(self, keep: int = KEEP_VERSIONS) -> None:
        """Keep only the newest ``keep`` versions (open snapshots keep reading theirs)."""
        versions = sorted(p for p in self.versions.glob("v*") if p.is_dir())
        for path in versions[:-keep]:
            shutil.rmtree(path, ignore_errors=True)
