"""The reader's training splits, and the share of them a learning-curve run trains on."""

from __future__ import annotations

import json
from pathlib import Path

from eval import reader_data as rd


def _files(tmp_path: Path) -> tuple[Path, Path]:
    def qa(key: str) -> dict[str, object]:
        return {"id": key, "question": "Who?", "answers": [{"text": "Ann", "answer_start": 0}]}
    squad = {"data": [{"title": f"t{a}", "paragraphs": [
        {"context": "Ann came.", "qas": [qa(f"s{a}-{p}")]} for p in range(30)]}
        for a in range(10)]}
    newsqa = {"data": [{"title": "", "paragraphs": [
        {"context": "Ann came.", "qas": [qa(f"n{s}")]}]} for s in range(200)]}
    paths = tmp_path / "squad.json", tmp_path / "newsqa.json"
    paths[0].write_text(json.dumps(squad))
    paths[1].write_text(json.dumps(newsqa))
    return paths


def test_a_share_trains_on_part_of_the_same_contexts_and_keeps_dev_and_tests(
        tmp_path: Path) -> None:
    squad, newsqa = _files(tmp_path)
    full = rd.make_splits(squad, newsqa)
    half = rd.make_splits(squad, newsqa, train_share=0.5)
    keys = {c.key for c in full.train}
    half_keys = {c.key for c in half.train}
    assert half_keys < keys
    assert 0.35 < len(half_keys) / len(keys) < 0.65
    for name in ("dev", "squad_test", "newsqa_test"):
        assert [c.key for c in getattr(half, name)] == [c.key for c in getattr(full, name)]
    quarter = {c.key for c in rd.make_splits(squad, newsqa, train_share=0.25).train}
    assert quarter < half_keys  # a smaller share is inside a larger one: curves are nested
