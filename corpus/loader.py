"""Turn article files into clean Documents.

The cleaned text is the single source of truth: every offset anywhere in groundqa (chunk spans,
citation spans) indexes into ``Document.text``.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from corpus.errors import DocumentLoadError

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
MANIFEST_NAME = "manifest.json"
DEMO_CORPUS_DIR = Path(__file__).resolve().parent / "articles"
DEMO_MANIFEST = DEMO_CORPUS_DIR / MANIFEST_NAME
MAX_FILE_BYTES = 20 * 1024 * 1024


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


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_bytes(raw: bytes, name: str) -> tuple[str, list[str]]:
    """Decode file bytes to text, refusing binary data and falling back from UTF-8 with a note."""
    warnings: list[str] = []
    if not raw.strip():
        raise DocumentLoadError(f"{name}: file is empty")
    sample = raw[:8192]
    if b"\x00" in sample:
        raise DocumentLoadError(f"{name}: looks like a binary file (contains NUL bytes)")
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if controls / max(len(sample), 1) > 0.05:
        raise DocumentLoadError(f"{name}: looks like a binary file (control bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
            encoding = "windows-1252"
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            encoding = "latin-1"
        warnings.append(f"{name}: not valid UTF-8, decoded as {encoding}")
    return text, warnings


# ---------------------------------------------------------------------------------------------
# Cleaning

_TERMINAL = tuple(".!?…:;\"”’)]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_BOILERPLATE_LINE = re.compile(
    r"""^(
        (support|subscribe\s+to|follow)\s+\S+(\s+\S+)?      # "Support SouthFront"
      | subscribe | notify\s+of | guest | oldest | newest(\s+most\s+voted)?
      | inline\s+feedbacks | view\s+all\s+comments | \d+\s+comments?
      | would\s+love\s+your\s+thoughts.* | login | log\s+in | sign\s+up | share(\s+this)?
      | click\s+to\s+(see|enlarge|view).* | more\s+on\s+the\s+topic:? | read\s+more:?
      | related(\s+articles?)?:? | advertisement | tags?:.* | source:\s*\S{1,40}
      | (photo|image|picture|credit|photograph)s?(\s+credit)?\s*:.*
      | by\s+.{1,60}\b(19|20)\d\d                          # byline with a date
      | [\W\d_]*                                            # numbers, symbols, "0 $", "()"
      | x | .{0,3}
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# Photo captions end with a credit: "... / OpenStreetMap Foundation, cc-by-sa 2.0"
_CAPTION_CREDIT = re.compile(
    r"(/|©|\|)\s*[^/]{0,80}(cc[- ]by|creative commons|getty|reuters|afp|ap photo|"
    r"shutterstock|wikimedia|openstreetmap|photo|courtesy)[^/]{0,40}$",
    re.IGNORECASE,
)
_DATE_WIDGET = re.compile(
    r"^(january|february|march|april|may|june|july|august|september|october|november|"
    r"december)\s+\d{4}\b(?![^\W\d_]*[a-z]{4,}.*\.$)",
    re.IGNORECASE,
)


def _is_prose(line: str) -> bool:
    words = line.split()
    return len(words) >= 12 or (len(words) >= 6 and line.rstrip().endswith(_TERMINAL))


def _is_boilerplate(line: str) -> bool:
    stripped = line.strip()
    if _BOILERPLATE_LINE.match(stripped):
        return True
    if _CAPTION_CREDIT.search(stripped):
        return True
    # A date widget such as "AUGUST 2025 <days left in another script>" that is not a sentence.
    return bool(_DATE_WIDGET.match(stripped)) and len(stripped.split()) <= 6


def _normalise_line(line: str) -> str:
    line = unicodedata.normalize("NFC", line)
    line = _ZERO_WIDTH.sub("", line)
    line = "".join(ch for ch in line if ch in "\t" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", line).strip()


def _strip_markdown(line: str) -> str:
    line = re.sub(r"^\s{0,3}#{1,6}\s+", "", line)
    line = re.sub(r"^\s{0,3}>\s?", "", line)
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", "", line)
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)
    line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)
    line = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", line)
    line = re.sub(r"`([^`]+)`", r"\1", line)
    return line


def clean_text(raw: str, *, markdown: bool = False) -> tuple[str, str | None]:
    """Clean article text; return (cleaned text, headline if one was found).

    Removes widget and comment debris, captions and bylines, a repeated headline, and joins
    hard-wrapped lines back into paragraphs. Paragraphs are separated by a blank line.
    """
    lines = [_normalise_line(_strip_markdown(x) if markdown else x) for x in raw.splitlines()]
    if markdown:
        lines = [x for x in lines if not re.fullmatch(r"[-*_=]{3,}", x)]

    first_line = next((i for i, x in enumerate(lines) if x), None)
    # A first line that is not a finished sentence is the headline, however long.
    if first_line is not None and (
        lines[first_line].endswith(_TERMINAL[:4]) or len(lines[first_line].split()) > 30
    ):
        first_line = None
    first_prose = next(
        (i for i, x in enumerate(lines) if _is_prose(x) and i != first_line), None
    )
    last_prose = next((i for i in range(len(lines) - 1, -1, -1) if _is_prose(lines[i])), None)

    headline: str | None = None
    kept: list[str | None] = []  # None marks a paragraph break
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if not line:
            kept.append(None)
            continue
        key = line.casefold()
        if key in seen and len(line.split()) <= 25:
            continue  # a duplicated headline or repeated widget line
        in_head = first_prose is not None and i < first_prose
        in_tail = last_prose is not None and i > last_prose
        if _is_boilerplate(line):
            continue
        if i == first_line:
            headline = line
            seen.add(key)
            kept.extend([line, None])
            continue
        if in_head:
            # Before the story starts, short fragments are widgets; a longer line is the
            # headline (when none was found yet) or the start of a hard-wrapped paragraph.
            words = line.split()
            if len(words) < 6:
                continue
            if headline is None and len(words) <= 30 and not line.endswith(_TERMINAL[:4]):
                headline = line
                seen.add(key)
                kept.extend([line, None])
                continue
        continues_sentence = (
            line[:1].islower() and bool(kept) and kept[-1] is not None
            and not kept[-1].endswith(_TERMINAL)
        )
        if in_tail and not _is_prose(line) and not continues_sentence:
            continue
        seen.add(key)
        kept.append(line)

    paragraphs: list[str] = []
    current: list[str] = []
    for entry in kept:
        if entry is None:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if current and not _continues(current[-1], entry, is_headline=(current[-1] == headline)):
            paragraphs.append(" ".join(current))
            current = []
        current.append(entry)
    if current:
        paragraphs.append(" ".join(current))
    if headline is None and paragraphs and not _is_prose(paragraphs[0]):
        headline = paragraphs[0]
    return "\n\n".join(paragraphs), headline


def _continues(previous: str, line: str, *, is_headline: bool) -> bool:
    """Whether ``line`` continues the hard-wrapped paragraph that ``previous`` ends."""
    if is_headline:
        return False
    if line[:1].islower():
        return True
    # A long line without closing punctuation was wrapped mid-sentence; short ones are headings.
    return len(previous) >= 40 and not previous.endswith(_TERMINAL)


# ---------------------------------------------------------------------------------------------
# Metadata

_BYLINE_DATE = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December)\s+(\d{1,2}),\s+((?:19|20)\d\d)\b"
)


def _load_manifest(directory: Path) -> dict[str, dict[str, object]]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("ignoring unreadable manifest %s: %s", path, exc)
        return {}
    documents = data.get("documents", {}) if isinstance(data, dict) else {}
    return documents if isinstance(documents, dict) else {}


def doc_id_for(path: Path) -> str:
    """Stable document id for a file: its name without extension, made URL-safe."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.")
    return stem or hashlib.sha256(str(path).encode()).hexdigest()[:16]


def _guess_published(raw: str) -> str | None:
    match = _BYLINE_DATE.search(raw[:2000])
    if not match:
        return None
    month = list(calendar.month_name).index(match.group(1))
    try:
        return date(int(match.group(3)), month, int(match.group(2))).isoformat()
    except ValueError:
        return None


def parse_document(
    raw: bytes,
    *,
    name: str,
    suffix: str,
    doc_id: str,
    metadata: dict[str, object] | None = None,
    source: str = "",
) -> Document:
    """Build a Document from raw bytes of a .txt, .md or .html article."""
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentLoadError(
            f"{name}: unsupported file type {suffix or '(none)'!r} "
            f"(supported: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    text, warnings = decode_bytes(raw, name)
    meta = dict(metadata or {})
    html_title = html_outlet = html_date = None
    if suffix in (".html", ".htm"):
        import trafilatura

        extracted = trafilatura.extract(
            text, include_comments=False, include_tables=False, favor_precision=True,
            with_metadata=False,
        )
        info = trafilatura.extract_metadata(text)
        if info is not None:
            html_title, html_outlet, html_date = info.title, info.sitename, info.date
        if not extracted or not extracted.strip():
            raise DocumentLoadError(f"{name}: no article text found in the HTML")
        text = extracted
    cleaned, headline = clean_text(text, markdown=suffix in (".md", ".markdown"))
    if len(cleaned.split()) < 5:
        raise DocumentLoadError(f"{name}: no article text left after cleaning")

    inferred = list(meta.get("inferred", []) or [])  # type: ignore[call-overload]
    title = str(meta.get("title") or html_title or headline or "")
    if not meta.get("title"):
        inferred.append("title")
        if not title:
            title = cleaned.split("\n", 1)[0][:120]
    outlet = str(meta.get("outlet") or html_outlet or "Unknown outlet")
    if not meta.get("outlet"):
        inferred.append("outlet")
    published_value = meta.get("published") or html_date or _guess_published(text)
    if not meta.get("published") and published_value:
        inferred.append("published")
    published = validate_published(str(published_value) if published_value else None)
    return Document(
        doc_id=doc_id,
        text=cleaned,
        title=title,
        outlet=outlet,
        published=published,
        source=source,
        inferred=tuple(dict.fromkeys(inferred)),
        warnings=tuple(warnings),
    )


def load_file(path: Path, manifest: dict[str, dict[str, object]] | None = None) -> Document:
    """Load one article file, using the manifest beside it for metadata when present."""
    if not path.exists():
        raise DocumentLoadError(f"{path}: no such file")
    if not path.is_file():
        raise DocumentLoadError(f"{path}: not a regular file")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentLoadError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} "
            f"(supported: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DocumentLoadError(f"{path}: file is {size} bytes, over the {MAX_FILE_BYTES} limit")
    if manifest is None:
        manifest = _load_manifest(path.parent)
    meta = manifest.get(path.name)
    return parse_document(
        path.read_bytes(),
        name=str(path),
        suffix=path.suffix,
        doc_id=str((meta or {}).get("doc_id") or doc_id_for(path)),
        metadata=meta,
        source=str(path),
    )


def iter_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand folders recursively (sorted); pass files through.

    Every file of a folder is yielded, so one of an unsupported type is reported as skipped
    rather than silently ignored; the metadata manifest and hidden files are left out.
    """
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.name != MANIFEST_NAME:
                    yield child
        else:
            yield path


def load_paths(paths: Iterable[Path]) -> LoadReport:
    """Load files and folders; bad files are skipped with a reason and the rest still load."""
    report = LoadReport()
    manifests: dict[Path, dict[str, dict[str, object]]] = {}
    for path in iter_paths(paths):
        try:
            manifest = manifests.setdefault(path.parent, _load_manifest(path.parent))
            document = load_file(path, manifest)
        except DocumentLoadError as exc:
            report.skipped.append((str(path), exc.message))
            continue
        except OSError as exc:
            report.skipped.append((str(path), f"{path}: cannot read ({exc.strerror or exc})"))
            continue
        report.documents.append(document)
        report.warnings.extend((str(path), w) for w in document.warnings)
    return report
