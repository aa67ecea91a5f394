"""Checker evaluation data: WiCE and Climate-FEVER examples, and the on-disk vector caches.

Sentence embeddings and word-piece vectors (float16, ~360 MB for WiCE + Climate-FEVER; the first
run encodes ~16k texts, ~25 min on 2 busy cores) are cached under
``~/.cache/groundqa/checker-eval`` (``GROUNDQA_CACHE`` moves it).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from eval.checker_alignment import TokenVectors, alignment_subset
from eval.jsonl import json_file
from service.support import strip_attribution
from service.support.analysis import analyse
from service.support.checker import embedding_subset

logger = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_DIR = Path(os.environ.get("GROUNDQA_CACHE", Path.home() / ".cache" / "groundqa")) / (
    "checker-eval"
)


@dataclass(frozen=True)
class Example:
    """One claim with its candidate quotes and binary gold label (True = supported)."""

    claim: str
    quotes: tuple[str, ...]
    supported: bool
    source_label: str


def _as_list(value: Any) -> list[Any]:
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


#: Labels read as "supported" in claim files (WiCE's, and the usual spellings of other
#: human-labelled sets converted to its format: 1/true, SUPPORTS, entailment).
SUPPORTED_LABELS = frozenset({"supported", "supports", "support", "entailment", "entailed",
                              "1", "true", "yes"})


def _evidence(value: Any) -> list[str]:
    """Evidence as sentences: a list, a Python- or JSON-literal list, or one plain text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                parsed = None
            if isinstance(parsed, list):
                return [str(s) for s in parsed]
        return [value] if text else []
    if isinstance(value, list):
        return [str(s) for s in value]
    raise ValueError(f"evidence must be text or a list of sentences, not {type(value).__name__}")


def _supported(label: Any) -> bool:
    if isinstance(label, bool):
        return label
    if isinstance(label, int | float):
        return label == 1
    return str(label).strip().lower() in SUPPORTED_LABELS


def load_wice(path: Path, *, supporting_only: bool = False) -> list[Example]:
    """Claims in WiCE's format (``claim``, ``evidence``, ``label``); quotes are all evidence
    sentences (or only the annotated supporting ones). Files from other human-labelled sets
    work when converted to it: ``evidence`` may be one text, ``label`` a boolean, 0/1 or a
    name (see ``SUPPORTED_LABELS``; anything else is *not supported*)."""
    examples = []
    for number, row in json_file(path):
        try:
            claim, label = str(row["claim"]), row["label"]
            evidence = _evidence(row.get("evidence", row.get("doc")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: needs claim, evidence (or doc) and label "
                             f"({exc})") from None
        if supporting_only and "supporting_sentences" in row:
            ids = sorted({i for group in _as_list(row["supporting_sentences"]) for i in group})
            evidence = [evidence[i] for i in ids if 0 <= i < len(evidence)]
        examples.append(Example(claim, tuple(evidence), _supported(label), str(label)))
    return examples


def load_climate_fever(path: Path) -> list[Example]:
    """Climate-FEVER claim–sentence pairs: SUPPORTS vs the rest."""
    return [
        Example(
            row["claim"],
            (ev["evidence"],),
            ev["evidence_label"] == "SUPPORTS",
            ev["evidence_label"],
        )
        for _, row in json_file(path)
        for ev in row["evidences"]
    ]


def resolve_wice(wice: Path) -> tuple[Path, Path]:
    """(dev, test) files from a WiCE directory or its claim-test.jsonl."""
    wice = Path(wice)
    if wice.is_dir():
        return wice / "claim-dev.jsonl", wice / "claim-test.jsonl"
    return wice.parent / "claim-dev.jsonl", wice


def text_key(text: str) -> str:
    """The cache key of a text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class _DiskCache(Generic[T]):
    """One item per text, computed in batches once and kept in one .npz file on disk."""

    batch_size = 512
    log_message = "embedding %d texts"

    def __init__(self, cache_path: Path | None) -> None:
        self.cache_path = cache_path
        self.items: dict[str, T] = {}
        if self.cache_path and self.cache_path.exists():
            with np.load(self.cache_path) as data:
                self.items = self._load(data)

    def ensure(self, texts: Sequence[str]) -> None:
        """Compute every text not in the cache yet, then save."""
        missing = sorted({t for t in texts if text_key(t) not in self.items})
        if not missing:
            return
        logger.info(self.log_message, len(missing))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            for text, item in zip(batch, self._compute(batch), strict=True):
                self.items[text_key(text)] = item
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._save(self.cache_path)

    def get(self, text: str) -> T:
        """The cached item of ``text``."""
        return self.items[text_key(text)]

    def _load(self, data: Any) -> dict[str, T]:
        raise NotImplementedError

    def _compute(self, texts: list[str]) -> Sequence[T]:
        raise NotImplementedError

    def _save(self, path: Path) -> None:
        raise NotImplementedError


class CachedEmbeddings(_DiskCache[np.ndarray]):
    """Embeds texts once per model and keeps vectors in a .npz cache on disk."""

    def __init__(self, embedder: Any, cache_dir: Path | None = CACHE_DIR) -> None:
        self.embedder = embedder
        super().__init__(
            cache_dir / f"{embedder.name.replace('/', '__')}.npz" if cache_dir else None
        )

    def ensure_for(self, examples: Sequence[Example]) -> None:
        """Embed each example's claim and the quotes the embedding model compares it with."""
        self.ensure(_texts_to_embed(examples))

    def vectors_for(self, example: Example) -> tuple[np.ndarray, np.ndarray]:
        """The claim vector and the quote vectors (zero rows for quotes not embedded)."""
        chosen = embedding_subset(analyse(strip_attribution(example.claim)), example.quotes)
        dim = self.get(example.claim).shape[0]
        quote_vectors = np.zeros((len(example.quotes), dim), np.float32)
        for i in chosen:
            quote_vectors[i] = self.get(example.quotes[i])
        return self.get(example.claim), quote_vectors

    def _load(self, data: Any) -> dict[str, np.ndarray]:
        keys, vectors = data["keys"], data["vectors"]
        return {str(k): vectors[i] for i, k in enumerate(keys)}

    def _compute(self, texts: list[str]) -> Sequence[np.ndarray]:
        return list(self.embedder.embed(texts))

    def _save(self, path: Path) -> None:
        keys = list(self.items)
        np.savez(path, keys=np.array(keys), vectors=np.stack([self.items[k] for k in keys]))


class TokenVectorCache(_DiskCache[TokenVectors]):
    """Contextual word-piece vectors per text, kept as float16 in one .npz file on disk."""

    batch_size = 256
    log_message = "encoding word pieces of %d texts"

    def __init__(self, encoder: Any, cache_dir: Path | None = CACHE_DIR) -> None:
        self.encoder = encoder
        name = encoder.name.replace("/", "__").replace(":", "_")
        super().__init__(cache_dir / f"{name}.npz" if cache_dir else None)

    @property
    def name(self) -> str:
        """The wrapped encoder's name (so the cache serves as a token encoder too)."""
        return str(self.encoder.name)

    def ensure_for(self, examples: Sequence[Example]) -> None:
        """Encode each example's (attribution-free) claim and the quotes it is aligned with."""
        self.ensure(_texts_to_align(examples))

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Encoder-compatible view (so a checker can use the cache as its token encoder)."""
        self.ensure(texts)
        return [self.get(t) for t in texts]

    def _load(self, data: Any) -> dict[str, TokenVectors]:
        keys, lengths = data["keys"], data["lengths"]
        vectors, offsets = data["vectors"], data["offsets"]
        ends = np.cumsum(lengths)
        return {
            str(key): TokenVectors(vectors[end - n : end], offsets[end - n : end])
            for key, end, n in zip(keys, ends, lengths, strict=True)
        }

    def _compute(self, texts: list[str]) -> Sequence[TokenVectors]:
        return [
            TokenVectors(tv.vectors.astype(np.float16), tv.offsets)
            for tv in self.encoder.encode(texts)
        ]

    def _save(self, path: Path) -> None:
        keys = list(self.items)
        np.savez(
            path,
            keys=np.array(keys),
            lengths=np.array([len(self.items[k].offsets) for k in keys], np.int64),
            vectors=np.concatenate([self.items[k].vectors for k in keys]),
            offsets=np.concatenate([self.items[k].offsets for k in keys]).astype(np.int32),
        )


def _texts_to_align(examples: Sequence[Example]) -> list[str]:
    texts: list[str] = []
    for ex in examples:
        texts.append(strip_attribution(ex.claim))
        texts.extend(ex.quotes[i] for i in alignment_subset(ex.claim, ex.quotes))
    return texts


def _texts_to_embed(examples: Sequence[Example]) -> list[str]:
    texts: list[str] = []
    for ex in examples:
        texts.append(ex.claim)
        chosen = embedding_subset(analyse(strip_attribution(ex.claim)), ex.quotes)
        texts.extend(ex.quotes[i] for i in chosen)
    return texts
