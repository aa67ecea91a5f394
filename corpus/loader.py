"""Turn article files into clean Documents.

The cleaned text is the single source of truth: every offset anywhere in groundqa (chunk spans,
citation spans) indexes into ``Document.text``. Metadata sources: corpus/metadata.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from corpus.clean import clean_text
from corpus.decode import decode_bytes
from corpus.document import Document, LoadReport, published_bounds, validate_published
from corpus.errors import DocumentLoadError
from corpus.metadata import (
    MANIFEST_NAME,
    doc_id_for,
    guess_published,
    is_sidecar,
    load_manifest,
    load_sidecar,
    split_front_matter,
    split_site_name,
    title_from_text,
)

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
DEMO_CORPUS_DIR = Path(__file__).resolve().parent / "articles"
DEMO_MANIFEST = DEMO_CORPUS_DIR / MANIFEST_NAME
MAX_FILE_BYTES = 20 * 1024 * 1024

__all__ = [
    "DEMO_CORPUS_DIR", "DEMO_MANIFEST", "MANIFEST_NAME", "SUPPORTED_SUFFIXES", "Document",
    "LoadReport", "clean_text", "decode_bytes", "doc_id_for", "iter_paths", "load_file",
    "load_paths", "parse_document", "published_bounds", "validate_published",
]


def _extract_html(text: str, name: str) -> tuple[str, str | None, str | None, str | None]:
    """(article text, title, site name, date) of an HTML page."""
    import trafilatura

    try:
        extracted = trafilatura.extract(
            text, include_comments=False, include_tables=False, favor_precision=True,
            with_metadata=False,
        )
        info = trafilatura.extract_metadata(text)
    except Exception as exc:  # the extractor (trafilatura, lxml) failing on this input
        # One line at warning (the CLI shows it: no traceback for a user's file).
        logger.warning("HTML extraction failed for %s: %r", name, exc)
        logger.debug("HTML extraction traceback for %s", name, exc_info=True)
        raise DocumentLoadError(
            f"{name}: the HTML could not be parsed ({type(exc).__name__})") from exc
    if not extracted or not extracted.strip():
        raise DocumentLoadError(f"{name}: no article text found in the HTML")
    title, site, published = (info.title, info.sitename, info.date) if info else (None,) * 3
    if not site:
        # trafilatura drops the " | Outlet" end of a page title; read it from <title> itself.
        page_title, site = split_site_name(_page_title(text))
        title = title or page_title
    return extracted, title, site, published


def _page_title(html: str) -> str | None:
    """The text of the page's ``<title>`` element."""
    import lxml.html

    try:
        found = lxml.html.fromstring(html).findtext(".//title")
    except (ValueError, lxml.etree.ParserError):
        return None
    return " ".join(found.split()) if found else None


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
    markdown = suffix in (".md", ".markdown")
    if markdown:
        text, front = split_front_matter(text, name)
        meta = {**front, **meta}  # explicit metadata (manifest, request) wins
    if suffix in (".html", ".htm"):
        text, html_title, html_outlet, html_date = _extract_html(text, name)
    cleaned, headline = clean_text(text, markdown=markdown)
    if len(cleaned.split()) < 5:
        raise DocumentLoadError(f"{name}: no article text left after cleaning")

    inferred = list(meta.get("inferred", []) or [])  # type: ignore[call-overload]
    title = str(meta.get("title") or html_title or headline or "")
    if not meta.get("title"):
        inferred.append("title")
        if not title:
            title = title_from_text(cleaned)
    outlet = str(meta.get("outlet") or html_outlet or "Unknown outlet")
    if not meta.get("outlet"):
        inferred.append("outlet")
    published_value = meta.get("published") or html_date or guess_published(text)
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
    """Load one article file, with metadata from the folder's manifest or its sidecar."""
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
        manifest = load_manifest(path.parent)
    meta = {**load_sidecar(path), **(manifest.get(path.name) or {})}
    return parse_document(
        path.read_bytes(),
        name=str(path),
        suffix=path.suffix,
        doc_id=str(meta.get("doc_id") or doc_id_for(path)),
        metadata=meta,
        source=str(path),
    )


def iter_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand folders recursively (sorted); pass files through.

    Every file of a folder is yielded, so one of an unsupported type is reported as skipped
    rather than silently ignored; the manifest, sidecar metadata and hidden files are left out.
    """
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.name != MANIFEST_NAME \
                        and not is_sidecar(child):
                    yield child
        else:
            yield path


def load_paths(paths: Iterable[Path]) -> LoadReport:
    """Load files and folders; bad files are skipped with a reason and the rest still load."""
    report = LoadReport()
    manifests: dict[Path, dict[str, dict[str, object]]] = {}
    for path in iter_paths(paths):
        try:
            manifest = manifests.setdefault(path.parent, load_manifest(path.parent))
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
