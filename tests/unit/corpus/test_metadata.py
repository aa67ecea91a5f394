"""Metadata for your own articles: manifest, sidecar, front matter, page titles, datelines."""

from __future__ import annotations

import json
from pathlib import Path

from corpus.loader import load_paths, parse_document

BODY = ("The council approved the new budget on Tuesday after a long debate. "
        "Spending on schools rises by four per cent next year.\n")


def test_sidecar_json_gives_title_outlet_date_and_is_not_an_article(tmp_path: Path) -> None:
    (tmp_path / "budget.txt").write_text(BODY)
    (tmp_path / "budget.json").write_text(json.dumps(
        {"title": "Budget passes", "outlet": "City Ledger", "published": "2024-05-07"}))
    report = load_paths([tmp_path])
    assert not report.skipped
    [doc] = report.documents
    assert (doc.title, doc.outlet, doc.published) == ("Budget passes", "City Ledger",
                                                      "2024-05-07")
    assert doc.inferred == ()


def test_manifest_wins_over_sidecar(tmp_path: Path) -> None:
    (tmp_path / "budget.txt").write_text(BODY)
    (tmp_path / "budget.json").write_text(json.dumps({"outlet": "Sidecar News"}))
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"documents": {"budget.txt": {"outlet": "Manifest Times"}}}))
    [doc] = load_paths([tmp_path]).documents
    assert doc.outlet == "Manifest Times"


def test_markdown_front_matter(tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text(
        "---\ntitle: Budget passes\noutlet: City Ledger\npublished: 2024-05-07\n---\n\n" + BODY)
    [doc] = load_paths([tmp_path]).documents
    assert (doc.title, doc.outlet, doc.published) == ("Budget passes", "City Ledger",
                                                      "2024-05-07")
    assert "title:" not in doc.text and doc.text.startswith("The council")


def test_page_title_with_site_name_gives_the_outlet() -> None:
    html = ("<html><head><title>Budget passes after debate | Steppe Review</title></head><body>"
            "<article><p>" + BODY * 3 + "</p></article></body></html>")
    doc = parse_document(html.encode(), name="page.html", suffix=".html", doc_id="page")
    assert doc.outlet == "Steppe Review"
    assert doc.title == "Budget passes after debate"


def test_wire_dateline_is_not_the_title() -> None:
    text = "(CNN) -- The council approved the new budget on Tuesday. " + BODY
    doc = parse_document(text.encode(), name="story.txt", suffix=".txt", doc_id="story")
    assert not doc.title.startswith("(CNN)")
    assert doc.title.startswith("The council approved")
    assert "title" in doc.inferred
