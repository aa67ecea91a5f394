"""`groundqa ingest` of an unchanged folder answers from the index without loading the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index.embedding import HashEmbedder

BODY = "The council approved the new budget on Tuesday after a long debate in the chamber.\n"


def test_unchanged_ingest_skips_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    import index.embedding
    from service.cli import app

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "budget.txt").write_text(BODY)
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    loads: list[str] = []

    def counting_loader(name: str) -> HashEmbedder:
        loads.append(name)
        return HashEmbedder()

    monkeypatch.setattr(index.embedding, "load_embedder", counting_loader)
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(articles), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["added"] == ["budget"]
    second = runner.invoke(app, ["ingest", str(articles), "--json"])
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert summary["unchanged"] == ["budget"] and summary["chunks_embedded"] == 0
    assert loads == ["hash"], "the second, unchanged ingest must not load the model"
    (articles / "budget.txt").write_text(BODY + "A second paragraph was added later on.\n")
    third = runner.invoke(app, ["ingest", str(articles), "--json"])
    assert json.loads(third.stdout)["replaced"] == ["budget"]
    assert loads == ["hash", "hash"]
