"""The cleaned article every layer works with, and its publication date at any precision."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date

from corpus.errors import DocumentLoadError


@dataclass(frozen=True)
class Document:
    """A cleaned article with its metadata; ``text`` is what every offset refers to."""

    doc_id: str
    text: str
    title: str
    outlet: str
    published: str | None  # ISO date as precise as known: "2022-03-07", "2023-01" or "2023"
    source: str = ""
    inferred: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """Hash of text and metadata: equal hashes mean re-ingesting is a no-op."""
        payload = json.dumps(
            [self.text, self.title, self.outlet, self.published, list(self.inferred)],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def published_range(self) -> tuple[str | None, str | None]:
        """First and last day covered by ``published`` (for date-range filters)."""
        return published_bounds(self.published)


@dataclass
class LoadReport:
    """What happened to each path of a batch load."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def published_bounds(published: str | None) -> tuple[str | None, str | None]:
    """Return the first and last ISO day of a date given to day, month or year precision."""
    if not published:
        return None, None
    parts = published.split("-")
    try:
        year = int(parts[0])
        if len(parts) == 1:
            return f"{year:04d}-01-01", f"{year:04d}-12-31"
        month = int(parts[1])
        if len(parts) == 2:
            last = calendar.monthrange(year, month)[1]
            return f"{year:04d}-{month:02d}-01", f"{year:04d}-{month:02d}-{last:02d}"
        day = date(year, month, int(parts[2]))
        return day.isoformat(), day.isoformat()
    except (ValueError, IndexError):
        return None, None


def validate_published(published: str | None) -> str | None:
    """Check a YYYY, YYYY-MM or YYYY-MM-DD date; raise DocumentLoadError otherwise."""
    if published in (None, ""):
        return None
    assert published is not None
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", published) or published_bounds(published) == (
        None,
        None,
    ):
        raise DocumentLoadError(
            f"published date {published!r} is not YYYY, YYYY-MM or YYYY-MM-DD"
        )
    return published
