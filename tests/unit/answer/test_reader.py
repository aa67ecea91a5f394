"""The span reader with the shipped int8 model (service/answer/models/reader/model.onnx)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.answer.reader import (
    CANDIDATES,
    MAX_SEQUENCE,
    Reading,
    SpanReader,
    Window,
    _window_spans,
    load_tokenizer,
    make_windows,
    trim_span,
)

FOUNDED = "Acme Robotics was founded by Jane Doe in 1990. It makes warehouse robots."
FILLER = (
    "The committee met on a rainy Tuesday to review the annual budget, the state of the roads, "
    "the library opening hours and a proposal for a new bicycle lane near the market square. "
)


@pytest.fixture(scope="module")
def reader() -> SpanReader:
    return SpanReader.load(threads=2)


def assert_verbatim(readings: list[Reading], passages: list[str]) -> None:
    for reading in readings:
        scores = [span.score for span in reading.spans]
        assert scores == sorted(scores, reverse=True)
        for span in reading.spans:
            assert span.passage == reading.passage
            assert passages[span.passage][span.start:span.end] == span.text
            assert span.text and span.text == span.text.strip()


def test_obvious_answer_is_found(reader: SpanReader) -> None:
    [reading] = reader.read("Who founded Acme Robotics?", [FOUNDED])
    assert reading.spans and reading.spans[0].text == "Jane Doe"
    assert reading.spans[0].score > reading.null_score
    assert_verbatim([reading], [FOUNDED])


def test_one_reading_per_passage_in_order(reader: SpanReader) -> None:
    passages = [FILLER, FOUNDED, "", "Jane Doe likes tea.", FOUNDED.upper()]
    readings = reader.read("When was Acme Robotics founded?", passages, top_n=2)
    assert [r.passage for r in readings] == list(range(len(passages)))
    assert all(len(r.spans) <= 2 for r in readings)
    assert readings[2].spans == []  # an empty passage has nothing to point at
    assert "1990" in readings[1].spans[0].text
    assert_verbatim(readings, passages)


def test_a_passage_reads_the_same_whatever_is_read_with_it(reader: SpanReader) -> None:
    question = "When was Acme Robotics founded?"
    [alone] = reader.read(question, [FOUNDED])
    for company in ([FILLER], ["Jane Doe likes tea."], [FILLER * 3, "Short."]):
        together = reader.read(question, [FOUNDED, *company])[0]
        assert together.null_score == alone.null_score
        assert together.spans == alone.spans


def test_empty_passage_list(reader: SpanReader) -> None:
    assert reader.read("Who founded Acme Robotics?", []) == []


def test_spans_are_verbatim_with_odd_text(reader: SpanReader) -> None:
    passages = ["  «Café Müller» — opened (in 1921) by the Müllers, in São Paulo!  ",
                "Tabs\tand\nnewlines\n\nseparate   words; the U.S. office opened in 2004."]
    readings = reader.read("Who opened Café Müller?", passages, top_n=5)
    assert len(readings) == 2
    assert_verbatim(readings, passages)


def test_very_long_passage(reader: SpanReader) -> None:
    half = FILLER * 110  # ~2,500 words each side
    passage = half + FOUNDED + " " + half
    assert len(passage.split()) > 5000
    [reading] = reader.read("Who founded Acme Robotics?", [passage])
    assert reading.spans and reading.spans[0].text == "Jane Doe"
    assert passage.index("Jane Doe") == reading.spans[0].start
    assert_verbatim([reading], [passage])


def test_threads_share_one_reader(reader: SpanReader) -> None:
    passages = [FOUNDED, FILLER]
    expected = reader.read("Who founded Acme Robotics?", passages)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: reader.read("Who founded Acme Robotics?", passages),
                                range(8)))
    assert all(result == expected for result in results)


def test_windows_cover_a_long_passage_within_the_limit() -> None:
    tokenizer = load_tokenizer()
    passage = FILLER * 40
    windows = make_windows(tokenizer, "What did the committee review?", [passage])
    assert len(windows) > 1
    assert all(len(w.input_ids) <= MAX_SEQUENCE for w in windows)
    covered = {offset for w in windows for offset in w.offsets}
    assert covered == {tuple(o) for o in tokenizer.encode(passage,
                                                         add_special_tokens=False).offsets}


@pytest.mark.parametrize(("text", "expected"), [
    (' "Jane Doe," ', "Jane Doe"), ("(1990)", "(1990)"), ("1990)", "1990"),
    ("the U.S.", "the U.S."), ("in Paris.", "in Paris"), ("$5 million;", "$5 million"),
    ("40%.", "40%"), ("—", ""),
])
def test_trim_span(text: str, expected: str) -> None:
    start, end = trim_span(text, 0, len(text))
    assert text[start:end] == expected


def test_runtime_does_not_import_torch() -> None:
    code = textwrap.dedent("""
        import sys
        from service.answer.reader import SpanReader
        SpanReader.load().read("Who founded Acme Robotics?", ["Acme was founded by Jane Doe."])
        assert "torch" not in sys.modules, "torch imported at run time"
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_model_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        SpanReader.load(tmp_path / "nope.onnx")


def _full_scan(start: np.ndarray, end: np.ndarray, window: Window, passage: str,
               max_words: int, n: int) -> list[tuple[int, int, float]]:
    """Every candidate pair trimmed, best score per distinct span, the best ``n``."""
    first, count = window.context_start, len(window.offsets)
    starts, ends = start[first:first + count], end[first:first + count]
    top = min(CANDIDATES, count)
    best: dict[tuple[int, int], float] = {}
    for s in np.argpartition(-starts, top - 1)[:top]:
        for e in np.argpartition(-ends, top - 1)[:top]:
            if e < s or e - s >= 3 * max_words:
                continue
            b, t = trim_span(passage, window.offsets[s][0], window.offsets[e][1])
            if not passage[b:t] or len(passage[b:t].split()) > max_words:
                continue
            best[(b, t)] = max(best.get((b, t), -np.inf), float(starts[s] + ends[e]))
    return sorted(((b, t, v) for (b, t), v in best.items()), key=lambda x: -x[2])[:n]


@pytest.mark.parametrize("seed", range(20))
def test_early_stop_keeps_the_best_spans_of_a_full_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = [f"w{i}{',' if i % 7 == 3 else ''}" for i in range(90)]
    passage = " ".join(words)
    offsets, at = [], 0
    for word in words:
        offsets.append((at, at + len(word)))
        at += len(word) + 1
    window = Window(0, tuple(range(len(words) + 5)), 3, tuple(offsets))
    start = rng.standard_normal(len(words) + 5).astype(np.float32)
    end = rng.standard_normal(len(words) + 5).astype(np.float32)
    for n in (1, 3, 5):
        spans = _window_spans(start, end, window, passage, 6, limit=n)
        kept: dict[tuple[int, int], float] = {}
        for span in spans:
            kept.setdefault((span.start, span.end), span.score)
        got = sorted(((b, t, v) for (b, t), v in kept.items()), key=lambda x: -x[2])[:n]
        want = _full_scan(start, end, window, passage, 6, n)
        assert [(b, t) for b, t, _ in got] == [(b, t) for b, t, _ in want]
        assert [v for *_, v in got] == pytest.approx([v for *_, v in want])
