"""BM25 over chunk texts with bm25s (English stopwords, Snowball stemming)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np

logger = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG at import, which prints a line on every index build.
logging.getLogger("bm25s").setLevel(logging.WARNING)

BM25_K1 = 1.2
BM25_B = 0.75


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-case, drop English stopwords and stem, as bm25s does for the index."""
    result = bm25s.tokenize(
        list(texts),
        stopwords="en",
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
    )
    return [list(tokens) for tokens in result]  # type: ignore[union-attr]


class LexicalIndex:
    """A BM25 index whose rows are aligned with a list of chunk row ids."""

    def __init__(self, retriever: bm25s.BM25 | None, row_ids: np.ndarray) -> None:
        self._retriever = retriever
        self.row_ids = row_ids
        self._position = {int(r): i for i, r in enumerate(row_ids)}
        self._vocab: dict[str, int] = (
            dict(retriever.vocab_dict) if retriever is not None else {}
        )

    @classmethod
    def build(cls, texts: Sequence[str], row_ids: Sequence[int]) -> LexicalIndex:
        """Index chunk texts; ``row_ids[i]`` names ``texts[i]``."""
        ids = np.asarray(row_ids, dtype=np.int64)
        if not texts:
            return cls(None, ids)
        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, ids)

    def save(self, directory: Path) -> None:
        """Write the index files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "row_ids.npy", self.row_ids)
        (directory / "empty.json").write_text(json.dumps(self._retriever is None))
        if self._retriever is not None:
            self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Load an index written by :meth:`save`."""
        row_ids = np.load(directory / "row_ids.npy")
        if json.loads((directory / "empty.json").read_text()):
            return cls(None, row_ids)
        retriever = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return cls(retriever, row_ids)

    def query_tokens(self, query: str) -> list[str]:
        """Query tokens that occur in the index vocabulary."""
        return [t for t in tokenize([query])[0] if t in self._vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed row for ``query`` (aligned with ``row_ids``)."""
        if self._retriever is None:
            return np.zeros(len(self.row_ids), np.float32)
        tokens = self.query_tokens(query)
        if not tokens:
            return np.zeros(len(self.row_ids), np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def position(self, row_id: int) -> int | None:
        """Position of a chunk row in the score array."""
        return self._position.get(row_id)
