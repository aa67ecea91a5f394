"""An article's title, outlet and date: from a folder's manifest.json, a sidecar file, Markdown
front matter, the HTML page, or worked out from the text (and then marked as inferred).

Where metadata comes from, most explicit first:
1. ``manifest.json`` in the article's folder: ``{"documents": {"<file name>": {...}}}``;
2. a sidecar ``<file stem>.json`` beside the article: ``{"title": ..., ...}``;
3. front matter at the top of a Markdown file (``---`` YAML ``---``);
4. the HTML page's own metadata (``<title>``, site name, date);
5. the text itself: a headline line, a dateline, a byline date.
Recognised fields: ``doc_id``, ``title``, ``outlet``, ``published`` (YYYY[-MM[-DD]]).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
from datetime import date
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FIELDS = ("doc_id", "title", "outlet", "published")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
# "(CNN) -- ", "LONDON, England (Reuters) — ": a wire dateline, not a title.
_DATELINE = re.compile(r"^\s*(?:[A-Z][A-Za-z .,'-]{0,40}\s*)?\([A-Za-z .&-]{2,30}\)\s*(?:--|—|–|-)"
                       r"\s*")
# "Headline | Outlet", "Headline — Outlet": a page title that ends with the site's name.
_TITLE_SITE = re.compile(r"^(?P<title>.{8,}?)\s+(?:\||—|–)\s+(?P<site>[^|—–]{2,60})$")
_BYLINE_DATE = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December)\s+(\d{1,2}),\s+((?:19|20)\d\d)\b"
)


def _fields(data: object, where: str) -> dict[str, object]:
    if not isinstance(data, dict):
        logger.warning("ignoring metadata in %s: expected an object of fields", where)
        return {}
    return {k: v for k, v in data.items() if k in FIELDS and v not in (None, "")}


def load_manifest(directory: Path) -> dict[str, dict[str, object]]:
    """A folder's ``manifest.json``: file name → metadata (empty when absent or unreadable)."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("ignoring unreadable manifest %s: %s", path, exc)
        return {}
    documents = data.get("documents", {}) if isinstance(data, dict) else {}
    return documents if isinstance(documents, dict) else {}


def sidecar_path(article: Path) -> Path:
    """Where an article's sidecar metadata lives: ``<stem>.json`` beside it."""
    return article.with_suffix(".json")


def is_sidecar(path: Path) -> bool:
    """A ``.json`` file that describes an article file of the same stem beside it."""
    if path.suffix.lower() != ".json" or path.name == MANIFEST_NAME:
        return False
    from corpus.loader import SUPPORTED_SUFFIXES

    return any(path.with_suffix(s).is_file() for s in SUPPORTED_SUFFIXES)


def load_sidecar(article: Path) -> dict[str, object]:
    """The sidecar's fields, or {} when there is none or it cannot be read."""
    path = sidecar_path(article)
    if not path.is_file():
        return {}
    try:
        return _fields(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("ignoring unreadable sidecar %s: %s", path, exc)
        return {}


def split_front_matter(text: str, name: str) -> tuple[str, dict[str, object]]:
    """Markdown front matter → (the text without it, its fields)."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, {}
    import yaml

    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        logger.warning("%s: ignoring unreadable front matter: %s", name, exc)
        return text[match.end():], {}
    fields = _fields(data, f"{name} front matter")
    # YAML reads 2023-01-05 as a date: keep it as the ISO string the rest expects.
    published = fields.get("published")
    if isinstance(published, date):
        fields["published"] = published.isoformat()
    return text[match.end():], {k: str(v) for k, v in fields.items()}


def split_site_name(title: str | None) -> tuple[str | None, str | None]:
    """"Headline | Outlet" → ("Headline", "Outlet"); other titles are returned unchanged."""
    if not title:
        return title, None
    match = _TITLE_SITE.match(title.strip())
    if match is None or len(match.group("site").split()) > 5:
        return title, None
    return match.group("title").strip(), match.group("site").strip()


def title_from_text(cleaned: str, limit: int = 100) -> str:
    """A title made from the first sentence when the article has no headline (dateline off)."""
    first = _DATELINE.sub("", cleaned.split("\n", 1)[0]).strip()
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def doc_id_for(path: Path) -> str:
    """Stable document id for a file: its name without extension, made URL-safe."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.")
    return stem or hashlib.sha256(str(path).encode()).hexdigest()[:16]


def guess_published(raw: str) -> str | None:
    """A "Month D, YYYY" byline date near the top of the text, if any."""
    match = _BYLINE_DATE.search(raw[:2000])
    if not match:
        return None
    month = list(calendar.month_name).index(match.group(1))
    try:
        return date(int(match.group(3)), month, int(match.group(2))).isoformat()
    except ValueError:
        return None
