"""Tests for corpus/loader.py: cleaning the seed articles, metadata, and skipping bad files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corpus.errors import DocumentLoadError
from corpus.loader import (
    DEMO_CORPUS_DIR,
    DEMO_MANIFEST,
    Document,
    clean_text,
    load_file,
    load_paths,
    published_bounds,
)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def by_prefix(seed_documents: list[Document]) -> dict[str, Document]:
    """Seed documents keyed by their number prefix ("000" … "004")."""
    return {d.doc_id[:3]: d for d in seed_documents}


def _raw(doc: Document) -> str:
    return Path(doc.source).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The seed articles


def test_all_five_seed_articles_load(seed_documents: list[Document]) -> None:
    assert sorted(d.doc_id[:3] for d in seed_documents) == ["000", "001", "002", "003", "004"]
    assert all(not d.warnings for d in seed_documents)


# Lines of the raw files that are boilerplate and must not survive cleaning.
_BOILERPLATE_LINES = {
    "000": ["There is concern that Tajikistan might face ISIS", "By bne IntelIiNews March 7, 2022"],
    "004": ["Would love your thoughts, please comment."],
}


@pytest.mark.parametrize("prefix", ["000", "001", "002", "003", "004"])
def test_every_prose_line_of_the_raw_article_survives(
    by_prefix: dict[str, Document], prefix: str
) -> None:
    doc = by_prefix[prefix]
    cleaned = _flat(doc.text)
    lost = []
    for line in _raw(doc).splitlines():
        line = _flat(line)
        if len(line.split()) < 6 or any(b in line for b in _BOILERPLATE_LINES.get(prefix, [])):
            continue
        if line not in cleaned:
            lost.append(line)
    assert lost == []


@pytest.mark.parametrize(
    "fragment",
    ["Support SouthFront", "17 Comments", "Notify of", "0 $", "2,500 $", "AUGUST 2025",
     "Click to see full-size image", "Inline Feedbacks", "View all comments", "Newest Most Voted",
     "MORE ON THE TOPIC", "Would love your thoughts", "Subscribe"],
)
def test_004_widgets_removed(by_prefix: dict[str, Document], fragment: str) -> None:
    assert fragment.casefold() not in by_prefix["004"].text.casefold()


def test_004_story_kept(by_prefix: dict[str, Document]) -> None:
    text = by_prefix["004"].text
    assert "A new militant hotbed is brewing in the Central Asia." in text
    assert text.rstrip().endswith(
        "undermine the security situation in the southern Russian borders.”"
    )
    # The headline appears twice in the raw file; once in the cleaned text.
    assert text.count("ISIS Threat Is Growing In Cenral Asia") == 1


def test_000_caption_and_byline_removed_headline_once(by_prefix: dict[str, Document]) -> None:
    doc = by_prefix["000"]
    headline = "Taliban, terrorist groups ‘set to destabilise Central Asia within six weeks’"
    assert "OpenStreetMap" not in doc.text
    assert "(shaded)" not in doc.text
    assert "IntelIiNews" not in doc.text
    assert doc.text.count(headline) == 1
    assert doc.text.startswith(headline + "\n\n")
    assert "4,400 additional troops" in doc.text


def test_001_source_note_removed_last_sentence_kept(by_prefix: dict[str, Document]) -> None:
    text = by_prefix["001"].text
    assert "source: ng" not in text.casefold()
    assert text.rstrip().endswith(
        "especially after the Taliban defeated them in 2015,” Knyazev said."
    )
    # The in-text editorial note "– NG)" is part of a sentence and stays.
    assert "– NG)" in text


def test_002_photo_credit_removed(by_prefix: dict[str, Document]) -> None:
    text = by_prefix["002"].text
    assert "Photo:" not in text
    assert text.startswith(
        "Central Asia Voice Terrorism Concerns as US Projects Confidence in Taliban\n\n"
    )
    assert text.rstrip().endswith("will radically change the water balance in Central Asia.")


def test_003_hard_wrapped_lines_are_reflowed(by_prefix: dict[str, Document]) -> None:
    text = by_prefix["003"].text
    assert "ISIS Khorasan seeks to expand its sphere of influence in Central Asia" in text
    # No newline inside a paragraph: every line is a whole paragraph separated by a blank line.
    assert "\n" not in text.replace("\n\n", "")
    for paragraph in text.split("\n\n"):
        words = paragraph.split()
        is_heading = len(words) <= 4 and not paragraph.endswith(".")
        assert is_heading or paragraph.endswith((".", "”", '"')) or paragraph == text.split(
            "\n\n"
        )[0], paragraph
    assert text.rstrip().endswith(
        "it is not allowed to use Afghan lands to attack Afghanistan's neighbors, Naggar concluded."
    )


def test_003_headings_kept_as_own_paragraphs(by_prefix: dict[str, Document]) -> None:
    paragraphs = by_prefix["003"].text.split("\n\n")
    for heading in ["Confronting ISIS", "Threatened borders", "Expansionist ambitions"]:
        assert heading in paragraphs


def test_manifest_metadata_is_applied(seed_documents: list[Document]) -> None:
    manifest = json.loads(DEMO_MANIFEST.read_text(encoding="utf-8"))["documents"]
    assert len(manifest) == len(seed_documents)
    for doc in seed_documents:
        meta = manifest[Path(doc.source).name]
        assert doc.title == meta["title"]
        assert doc.outlet == meta["outlet"]
        assert doc.published == meta["published"]
        assert set(doc.inferred) == set(meta["inferred"])


def test_published_ranges_follow_precision(by_prefix: dict[str, Document]) -> None:
    assert by_prefix["000"].published_range == ("2022-03-07", "2022-03-07")
    assert by_prefix["001"].published_range == ("2023-01-01", "2023-01-31")
    assert by_prefix["003"].published_range == ("2023-02-01", "2023-02-28")
    assert published_bounds("2024") == ("2024-01-01", "2024-12-31")
    assert published_bounds("2024-02") == ("2024-02-01", "2024-02-29")


def test_content_hash_is_stable_and_sensitive(by_prefix: dict[str, Document]) -> None:
    doc = by_prefix["000"]
    again = load_file(Path(doc.source))
    assert again.content_hash == doc.content_hash
    changed = Document(**{**doc.__dict__, "text": doc.text + " More."})
    assert changed.content_hash != doc.content_hash


# ---------------------------------------------------------------------------------------------
# Bad files are skipped with a reason; the rest load

_ARTICLE = (
    "Border guards in Tajikistan reported new clashes with armed smugglers in the mountains "
    "on Tuesday, according to a statement from the national security committee.\n\n"
    "Officials said that patrols along the border would be reinforced in the coming weeks.\n"
)


def _write_mixed_folder(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "good": folder / "good.txt",
        "binary": folder / "binary.txt",
        "empty": folder / "empty.txt",
        "latin1": folder / "latin1.txt",
        "pdf": folder / "report.pdf",
    }
    files["good"].write_text("Clashes on the border\n\n" + _ARTICLE, encoding="utf-8")
    files["binary"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    files["empty"].write_bytes(b"  \n\n ")
    files["latin1"].write_bytes(("Café talks in Dushanbe\n\n" + _ARTICLE).encode("latin-1"))
    files["pdf"].write_bytes(b"%PDF-1.7\n" + _ARTICLE.encode())
    return files


def test_mixed_folder_loads_good_files_and_skips_bad_ones(tmp_path: Path) -> None:
    files = _write_mixed_folder(tmp_path / "mix")
    report = load_paths([tmp_path / "mix"])
    loaded = {Path(d.source).name for d in report.documents}
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert loaded == {"good.txt", "latin1.txt"}
    assert "binary" in skipped["binary.txt"]
    assert "empty" in skipped["empty.txt"]
    # A file of an unsupported type inside a folder is reported, not silently ignored.
    assert "report.pdf" not in loaded
    assert "unsupported file type '.pdf'" in skipped["report.pdf"]
    assert [Path(p).name for p, _ in report.warnings] == ["latin1.txt"]
    assert files["good"].exists()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("blob.txt", b"\x00\x01\x02\x03binary\x00data" * 50, "binary"),
        ("control.txt", bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 200, "binary"),
        ("empty.txt", b"", "empty"),
        ("whitespace.md", b"\n \t\n", "empty"),
        ("report.pdf", b"%PDF-1.7 something", "unsupported file type '.pdf'"),
        ("noext", b"Some words here that are an article.", "unsupported file type"),
        ("tiny.txt", b"Hi.", "no article text"),
    ],
)
def test_bad_file_is_skipped_with_reason(tmp_path: Path, name: str, content: bytes,
                                         reason: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    good.write_text(_ARTICLE, encoding="utf-8")
    report = load_paths([bad, good])
    assert [Path(d.source).name for d in report.documents] == ["good.txt"]
    assert len(report.skipped) == 1
    path, message = report.skipped[0]
    assert path == str(bad)
    assert reason in message
    assert name in message  # the reason names the file
    with pytest.raises(DocumentLoadError, match=re.escape(reason)):
        load_file(bad)


def test_nonexistent_path_is_skipped(tmp_path: Path) -> None:
    report = load_paths([tmp_path / "missing.txt", DEMO_CORPUS_DIR])
    assert len(report.documents) == 5
    assert report.skipped == [(str(tmp_path / "missing.txt"),
                               f"{tmp_path / 'missing.txt'}: no such file")]


def test_latin1_is_decoded_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(("Café résumé in Dushanbe\n\n" + _ARTICLE).encode("latin-1"))
    doc = load_file(path)
    assert "Café résumé in Dushanbe" in doc.text
    assert doc.title == "Café résumé in Dushanbe"
    assert len(doc.warnings) == 1 and "not valid UTF-8" in doc.warnings[0]


def test_utf8_bom_and_crlf_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + _ARTICLE.replace("\n", "\r\n").encode())
    doc = load_file(path)
    assert not doc.text.startswith("\ufeff")
    assert "\r" not in doc.text
    assert not doc.warnings


# ---------------------------------------------------------------------------------------------
# Markdown and HTML


def test_markdown_syntax_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text(
        "# Clashes on the Tajik border\n\n"
        "Border guards reported **new clashes** with smugglers in the *mountains* on Tuesday, "
        "according to [a statement](https://example.org/statement) from the committee.\n\n"
        "![map of the region](map.png)\n\n"
        "---\n\n"
        "> Patrols along the border will be reinforced in the coming weeks, officials said.\n\n"
        "The committee used the code word `Pamir` for the operation in its public statement.\n",
        encoding="utf-8",
    )
    doc = load_file(path)
    assert doc.title == "Clashes on the Tajik border"
    for syntax in ["#", "**", "[", "](", "https://", "![", "---", "> ", "`", "*mountains*"]:
        assert syntax not in doc.text, syntax
    assert "reported new clashes with smugglers in the mountains on Tuesday" in doc.text
    assert "according to a statement from the committee." in doc.text
    assert "Patrols along the border will be reinforced" in doc.text
    assert "the code word Pamir for" in doc.text


_HTML = """<!DOCTYPE html>
<html><head><title>Border guards report new clashes in Badakhshan</title>
<style>body { color: red; } .STYLEMARKER { display: none }</style>
<script>var tracking = "SCRIPTMARKER"; function track() { return 1; }</script>
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World NAVMARKER</a></li></ul></nav>
<article>
<h1>Border guards report new clashes in Badakhshan</h1>
<p>Border guards in Tajikistan reported new clashes with armed smugglers in the mountainous
Badakhshan region on Tuesday, according to a statement from the national security committee.</p>
<p>The statement said that three smugglers were detained and a large quantity of narcotics was
seized near the river crossing, which has long been used to move drugs from Afghanistan.</p>
<p>Officials in Dushanbe said that patrols along the border would be reinforced in the coming
weeks and that cooperation with neighbouring countries would continue.</p>
</article>
<footer>FOOTERMARKER. All rights reserved.</footer>
</body></html>
"""


def test_html_extraction_drops_script_style_nav(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(_HTML, encoding="utf-8")
    doc = load_file(path)
    assert doc.title == "Border guards report new clashes in Badakhshan"
    for marker in ["SCRIPTMARKER", "STYLEMARKER", "NAVMARKER", "function track", "color: red",
                   "<p>", "Home"]:
        assert marker not in doc.text, marker
    assert "three smugglers were detained" in doc.text
    assert "cooperation with neighbouring countries would continue." in doc.text
    assert "title" in doc.inferred


def test_html_title_from_metadata_when_no_title_tag(tmp_path: Path) -> None:
    html = _HTML.replace(
        "<title>Border guards report new clashes in Badakhshan</title>",
        '<meta property="og:title" content="Smugglers detained on the Tajik-Afghan border">',
    )
    path = tmp_path / "og.htm"
    path.write_text(html, encoding="utf-8")
    assert load_file(path).title == "Smugglers detained on the Tajik-Afghan border"


def test_html_without_article_text_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    path.write_text("<html><head><title>x</title><script>var a=1;</script></head><body></body>"
                    "</html>", encoding="utf-8")
    report = load_paths([path])
    assert report.documents == []
    assert "no article text" in report.skipped[0][1]


@pytest.mark.parametrize("failure", [
    ImportError("lxml.html.clean module is now a separate project lxml_html_clean"),
    ValueError("Unicode strings with encoding declaration are not supported"),
    RecursionError("maximum recursion depth exceeded"),
])
def test_an_extractor_failure_is_a_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture,
                                              failure: Exception) -> None:
    """Issue 16: the extractor raising on a user's HTML skips that file with a reason."""
    import trafilatura

    def broken(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(trafilatura, "extract", broken)
    path = tmp_path / "page.html"
    path.write_text(_HTML, encoding="utf-8")
    with pytest.raises(DocumentLoadError) as raised:
        load_file(path)
    kind = type(failure).__name__
    assert raised.value.message == f"{path}: the HTML could not be parsed ({kind})"
    assert raised.value.__cause__ is failure
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert str(failure) in record.getMessage() and "\n" not in record.getMessage()
    report = load_paths([path])
    assert report.documents == [] and "could not be parsed" in report.skipped[0][1]


def test_clean_text_joins_wrapped_lines_and_keeps_paragraphs() -> None:
    raw = ("A headline without a full stop\n"
           "This sentence was wrapped by an old mail client somewhere in\n"
           "the middle and continues here, as the reader can see.\n\n"
           "A second paragraph stands on its own and ends properly.\n")
    text, headline = clean_text(raw)
    assert headline == "A headline without a full stop"
    assert text.split("\n\n") == [
        "A headline without a full stop",
        "This sentence was wrapped by an old mail client somewhere in the middle and continues "
        "here, as the reader can see.",
        "A second paragraph stands on its own and ends properly.",
    ]
