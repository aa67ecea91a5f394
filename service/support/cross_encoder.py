"""The trained cross-encoder: P(claim supported | evidence) from MiniLM reading both at once.

``groundqa train checker`` (``eval/checker_train.py``) fine-tunes the packaged all-MiniLM-L6-v2
as a pair classifier and ships an int8 ONNX file in ``models/checker/``. A pair is read as
``[CLS] claim [SEP] evidence [SEP]`` (at most ``MAX_SEQUENCE`` word pieces). Evidence longer
than one window is cut into windows of whole sentences; the claim's probability is the best
window's, because a claim is supported when some part of the evidence states it. The first
window is always the sentences that cover most of the claim's words (wherever they stand), so a
claim supported by two distant sentences can still be read against both together.

The packing and encoding below are also what the trainer uses, so training and serving agree.
Run time needs ONNX Runtime, numpy and ``tokenizers`` only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.answer.reader import INPUT_NAMES, cpu_session, load_tokenizer, model_file

logger = logging.getLogger(__name__)

#: Word pieces per pair; 256 keeps training on two cores feasible and covers ~8 sentences.
MAX_SEQUENCE = 256
#: Longer claims are cut (claims are one sentence; 64 pieces is ~45 words).
MAX_CLAIM_PIECES = 64
#: Pairs per ONNX Runtime call. The int8 model quantises its activations with one scale per
#: tensor, taken over the whole batch (padding included): read together, a pair's logit moved
#: with the pairs read beside it (by up to 1.0, median 0.14, on 300 Climate-FEVER pairs). Each
#: pair is read on its own, so a claim gets the same probability whatever else is checked with
#: it; on two cores that costs ~15 % (8.3 against 7.2 ms per pair).
ONNX_BATCH = 1
#: Windows read per claim: the covering sentences plus the consecutive windows that share most
#: words with the claim (long evidence such as a whole web page would otherwise cost ~12).
MAX_WINDOWS = 4
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "checker"

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’)\]]*\s+(?=\S)")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of to in on at for by with and or but is are was were be been being it its this "
    "that these those as from has have had not no he she they we you i his her their our".split())


def split_sentences(text: str) -> list[str]:
    """A passage's sentences (a light splitter: evidence may come as one long string)."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p]


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def select_sentences(claim: str, sentences: Sequence[str], limit: int = 4) -> list[int]:
    """Indices (in order) of up to ``limit`` sentences that greedily cover the claim's words."""
    target = _content(claim)
    chosen: list[int] = []
    covered: set[str] = set()
    bags = [_content(s) for s in sentences]
    for _ in range(min(limit, len(sentences))):
        best, gain = -1, 0
        for i, bag in enumerate(bags):
            if i in chosen:
                continue
            g = len((target - covered) & bag)
            if g > gain:
                best, gain = i, g
        if best < 0:
            break
        chosen.append(best)
        covered |= target & bags[best]
    return sorted(chosen)


class PairEncoder:
    """Turns (claim, evidence) into model inputs; shared by the trainer and the runtime."""

    def __init__(self, tokenizer: Any | None = None, max_length: int = MAX_SEQUENCE) -> None:
        self.tokenizer = tokenizer or load_tokenizer()
        self.max_length = max_length
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each text, no special tokens."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, claim: str, evidence: str) -> tuple[list[int], int]:
        """Input ids of one pair and the position where the evidence begins."""
        claim_ids, evidence_ids = self.pieces([claim, evidence])
        return self.join(claim_ids, evidence_ids)

    def join(self, claim_ids: Sequence[int], evidence_ids: Sequence[int]) -> tuple[list[int], int]:
        """``[CLS] claim [SEP] evidence [SEP]`` cut to ``max_length``."""
        head = [self.cls_id, *claim_ids[:MAX_CLAIM_PIECES], self.sep_id]
        budget = max(8, self.max_length - len(head) - 1)
        return [*head, *evidence_ids[:budget], self.sep_id], len(head)

    def windows(self, claim: str, quotes: Sequence[str]) -> list[str]:
        """Evidence texts to read the claim against: the covering sentences, then in order.

        ``quotes`` are sentences or passages; passages are split into sentences. Windows pack
        consecutive sentences up to the budget, overlapping by one sentence; at most
        ``MAX_WINDOWS`` are read.
        """
        sentences = [s for q in quotes for s in split_sentences(q)]
        if not sentences:
            return []
        claim_len = min(len(self.pieces([claim])[0]), MAX_CLAIM_PIECES)
        budget = max(8, self.max_length - claim_len - 3)
        lengths = [len(ids) for ids in self.pieces(sentences)]
        if sum(lengths) <= budget:
            return [" ".join(sentences)]
        windows: list[str] = []
        picked: list[int] = []
        used = 0
        for i in select_sentences(claim, sentences):
            if used + lengths[i] <= budget or not picked:
                picked.append(i)
                used += lengths[i]
        windows.append(" ".join(sentences[i] for i in picked))
        start = 0
        while start < len(sentences):
            stop, used = start, 0
            while stop < len(sentences) and (used + lengths[stop] <= budget or stop == start):
                used += lengths[stop]
                stop += 1
            windows.append(" ".join(sentences[start:stop]))
            if stop >= len(sentences):
                break
            start = max(start + 1, stop - 1)
        first, rest = windows[0], list(dict.fromkeys(windows[1:]))
        if len(rest) >= MAX_WINDOWS:
            target = _content(claim)
            ranked = sorted(range(len(rest)), key=lambda i: -len(target & _content(rest[i])))
            rest = [rest[i] for i in sorted(ranked[: MAX_WINDOWS - 1])]
        return list(dict.fromkeys([first, *rest]))

    def batch(self, encoded: Sequence[tuple[list[int], int]]) -> dict[str, np.ndarray]:
        """Padded model inputs (dynamic padding to the longest pair)."""
        length = max(len(ids) for ids, _ in encoded)
        ids = np.zeros((len(encoded), length), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, (pieces, evidence_start) in enumerate(encoded):
            ids[row, : len(pieces)] = pieces
            mask[row, : len(pieces)] = 1
            types[row, evidence_start : len(pieces)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class CrossEncoder:
    """The shipped pair classifier behind ONNX Runtime; loads lazily, safe to share."""

    def __init__(self, model_path: Path, threads: int | None = None) -> None:
        self.model_path = model_path
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._encoder: PairEncoder | None = None

    @classmethod
    def load(cls, path: Path | None = None, threads: int | None = None) -> CrossEncoder:
        """The model at ``path`` (file or folder; default: the shipped one); raises if missing."""
        return cls(model_file(path, DEFAULT_MODEL_DIR, "checker model"), threads)

    @property
    def encoder(self) -> PairEncoder:
        """The pair encoder (loads the tokenizer on first use)."""
        self._ensure_loaded()
        assert self._encoder is not None
        return self._encoder

    def _ensure_loaded(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._encoder = PairEncoder()
                    self._session = cpu_session(self.model_path, self.threads)
                    logger.info("support cross-encoder loaded from %s", self.model_path)
        return self._session

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The model's logit (log-odds of "supported") for each (claim, evidence) pair."""
        session = self._ensure_loaded()
        encoder = self.encoder
        if not pairs:
            return np.zeros(0, np.float32)
        claims = encoder.pieces([c for c, _ in pairs])
        evidence = encoder.pieces([e for _, e in pairs])
        encoded = [encoder.join(c, e) for c, e in zip(claims, evidence, strict=True)]
        out = np.zeros(len(encoded), np.float32)
        for begin in range(0, len(encoded), ONNX_BATCH):
            inputs = encoder.batch(encoded[begin : begin + ONNX_BATCH])
            (logit,) = session.run(["logit"], {k: inputs[k] for k in INPUT_NAMES})
            out[begin : begin + ONNX_BATCH] = np.asarray(logit, np.float32).reshape(-1)
        return out

    def claim_logits(self, items: Sequence[tuple[str, Sequence[str]]]) -> np.ndarray:
        """Per (claim, quotes): the best window's logit (``-inf`` when there is no evidence)."""
        pairs: list[tuple[str, str]] = []
        owner: list[int] = []
        for index, (claim, quotes) in enumerate(items):
            for window in self.encoder.windows(claim, quotes):
                pairs.append((claim, window))
                owner.append(index)
        best = np.full(len(items), -np.inf, np.float32)
        if pairs:
            for index, value in zip(owner, self.logits(pairs), strict=True):
                best[index] = max(best[index], value)
        return best
