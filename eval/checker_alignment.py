"""The strong support model, for offline evaluation: token alignment with contextual MiniLM.

``AlignmentChecker`` is the service's ``SupportChecker`` plus BERTScore-style alignment of the
claim's IDF-weighted words to the quotes' contextual word pieces (``alignment_features``). It is
the strongest model on WiCE dev, but it needs a MiniLM forward pass per claim and quote (tens of
ms on CPU), so only eval/ uses it; the fitted model sits in the service's weights file beside
the lexical one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from service.support import (
    SupportChecker,
    SupportModels,
    SupportResult,
    SupportThresholds,
    strip_attribution,
)
from service.support.analysis import NEGATIONS, STOPWORDS, analyse, word_weight
from service.support.features import LEXICAL_MODEL_FEATURES, claim_part_spans

if TYPE_CHECKING:
    from index.embedding import Embedder

logger = logging.getLogger(__name__)

ALIGNMENT_MODEL_FEATURES = (*LEXICAL_MODEL_FEATURES, "align_prec")


@dataclass(frozen=True)
class TokenVectors:
    """A text's contextual word-piece vectors (unit rows) and each piece's char span."""

    vectors: np.ndarray  # (n_pieces, dim) float32 or float16, special tokens removed
    offsets: np.ndarray  # (n_pieces, 2) int32 char offsets into the text


class MiniLMTokenEncoder:
    """Contextual word-piece vectors from the packaged all-MiniLM-L6-v2 (one forward pass)."""

    name = "sentence-transformers/all-MiniLM-L6-v2:last-layer-tokens"

    def __init__(self, batch_size: int = 64) -> None:
        from index.embedding import SentenceTransformerEmbedder

        # The embedder's own token pass: same packaged model, tokenizer and truncation.
        self._embedder = SentenceTransformerEmbedder(batch_size=batch_size)

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Word-piece vectors of each text (truncated at the model's maximum length)."""
        if not texts:
            return []
        result = []
        for matrix, offsets in self._embedder.token_embeddings(texts):
            spans = np.array(offsets, dtype=np.int32).reshape(-1, 2)
            keep = spans[:, 1] > spans[:, 0]  # drop [CLS]/[SEP]
            rows = matrix[keep]
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)
            result.append(TokenVectors(rows.astype(np.float32), spans[keep]))
        return result


#: Quotes aligned token-by-token (pre-selected lexically; WiCE evidence lists run to 100s).
ALIGN_QUOTES = 12


def alignment_subset(claim: str, quotes: Sequence[str]) -> list[int]:
    """Indices of the quotes worth aligning: the top matches by IDF-weighted shared stems."""
    if len(quotes) <= ALIGN_QUOTES:
        return list(range(len(quotes)))
    claim_t = analyse(strip_attribution(claim))
    scores = []
    for quote in quotes:
        t = analyse(quote)
        shared = sum(claim_t.weights[s] for s in claim_t.stem_set & t.stem_set)
        numbers = sum(1 for v in claim_t.numbers if v in t.numbers)
        scores.append(shared + 2.0 * numbers)
    order = sorted(range(len(quotes)), key=lambda i: (-scores[i], i))
    return sorted(order[:ALIGN_QUOTES])


_ALIGN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d[\d,.]*\d|\d")
#: Weight of a number in the alignment (numbers are rare and decisive, like rare words).
NUMBER_WEIGHT = 4.0
#: A claim word whose best aligned evidence piece is below this cosine counts as unaligned.
ALIGN_FLOOR = 0.6


def _claim_words(text: str, offsets: np.ndarray) -> list[tuple[int, int, float, list[int]]]:
    """Content words of ``text`` as (start, end, weight, piece rows)."""
    words = []
    for match in _ALIGN_WORD.finditer(text):
        lower = match.group(0).lower()
        if lower[0].isdigit():
            weight = NUMBER_WEIGHT
        elif lower in STOPWORDS or lower in NEGATIONS or len(lower) < 2:
            continue
        else:
            weight = word_weight(lower)
        rows = [
            i for i, (a, b) in enumerate(offsets) if a < match.end() and b > match.start()
        ]
        if rows:
            words.append((match.start(), match.end(), weight, rows))
    return words


def alignment_features(
    claim: str, claim_tokens: TokenVectors, quote_tokens: Sequence[TokenVectors]
) -> dict[str, float]:
    """BERTScore-style precision of the claim's content words against the quotes' word pieces.

    Each claim word scores the mean over its pieces of the best cosine to any quote piece;
    scores are IDF-weighted over the whole claim, over the best single quote, and per clause
    (the weakest clause decides WiCE's "partially supported").
    """
    words = _claim_words(claim, claim_tokens.offsets)
    quotes = [q for q in quote_tokens if len(q.offsets)]
    if not words or not quotes:
        return {name: 0.0 for name in ALIGNMENT_FEATURES}
    c = np.asarray(claim_tokens.vectors, np.float32)
    per_quote = np.stack(
        [(c @ np.asarray(q.vectors, np.float32).T).max(axis=1) for q in quotes]
    )  # (n_quotes, n_claim_pieces)
    best_piece = per_quote.max(axis=0)
    weights = np.array([w for _, _, w, _ in words])
    score = np.array([best_piece[rows].mean() for _, _, _, rows in words])
    quote_scores = np.stack([per_quote[:, rows].mean(axis=1) for _, _, _, rows in words], axis=1)
    total = weights.sum()
    missing = np.clip(ALIGN_FLOOR + 0.2 - score, 0.0, None)  # soft shortfall below ~0.8

    parts = []
    for start, end in claim_part_spans(claim):
        mask = np.array([start <= s < end for s, _, _, _ in words])
        if mask.any():
            parts.append(float((weights[mask] * score[mask]).sum() / weights[mask].sum()))
    parts = sorted(parts) or [float((weights * score).sum() / total)]
    return {
        "align_prec": float((weights * score).sum() / total),
        "align_best1": float(((quote_scores * weights).sum(axis=1) / total).max()),
        "align_min": float(score.min()),
        "align_unaligned": float(weights[score < ALIGN_FLOOR].sum() / total),
        "align_shortfall": float((weights * missing).sum()),
        "align_max_shortfall": float((weights * missing).max()),
        "align_part_min": parts[0],
        "align_part_low2": float(np.mean(parts[:2])),
    }


ALIGNMENT_FEATURES = (
    "align_prec",  # IDF-weighted mean best cosine of claim words to quote pieces
    "align_best1",  # the same against the single best quote
    "align_min",  # worst-aligned claim word
    "align_unaligned",  # weighted share of claim words below ALIGN_FLOOR
    "align_shortfall",  # summed weight x shortfall below ~0.8
    "align_max_shortfall",  # the largest single weight x shortfall
    "align_part_min",  # weakest clause's weighted alignment
    "align_part_low2",  # mean of the two weakest clauses
)


class TokenEncoder(Protocol):
    """Turns texts into contextual word-piece vectors (``MiniLMTokenEncoder`` or a cache)."""

    @property
    def name(self) -> str:
        """Names the model (and the on-disk cache)."""
        ...

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """One ``TokenVectors`` per text, in order."""
        ...


@dataclass
class MemoEncoder:
    """A token encoder that answers from a batch already encoded (falls back to the encoder)."""

    name: str
    memo: dict[str, TokenVectors]
    fallback: TokenEncoder

    def encode(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Vectors from the memo; texts not in it are encoded and remembered."""
        missing = [t for t in texts if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.fallback.encode(missing), strict=True))
        return [self.memo[t] for t in texts]


class AlignmentChecker(SupportChecker):
    """``SupportChecker`` with the token-alignment model (mode ``"alignment"``).

    Falls back to the service's lexical or embedding model when the weights hold no alignment
    model.
    """

    def __init__(
        self,
        token_encoder: TokenEncoder,
        embedder: Embedder | None = None,
        thresholds: SupportThresholds | None = None,
        models: SupportModels | None = None,
    ) -> None:
        super().__init__(embedder, thresholds, models)
        self.token_encoder = token_encoder
        if self.models.alignment is None:
            logger.warning("support weights have no alignment model; checks stay lexical")

    @property
    def mode(self) -> str:
        """``"alignment"`` when the weights hold the alignment model, else the service's mode."""
        if self.models.alignment is not None:
            return "alignment"
        return super().mode

    def check_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportResult]:
        """One batched forward pass over every claim and selected quote, then per-pair checks."""
        if self.mode != "alignment":
            return super().check_many(pairs)
        texts: list[str] = []
        for claim, quotes in pairs:
            kept = [q for q in quotes if q and q.strip()]
            if kept:
                texts.append(strip_attribution(claim))
                texts.extend(kept[i] for i in alignment_subset(claim, kept))
        unique = list(dict.fromkeys(texts))
        encoder = self.token_encoder
        memo = dict(zip(unique, encoder.encode(unique), strict=True)) if unique else {}
        batch = AlignmentChecker(
            MemoEncoder(encoder.name, memo, encoder), models=self.models,
            thresholds=self._thresholds,
        )
        return [batch.check(claim, quotes) for claim, quotes in pairs]

    def _extra_features(
        self, stripped: str, claim: str, quotes: Sequence[str]
    ) -> dict[str, float]:
        """The alignment features of the claim against its best-matching quotes."""
        chosen = [quotes[i] for i in alignment_subset(claim, quotes)]
        tokens = self.token_encoder.encode([stripped, *chosen])
        return alignment_features(stripped, tokens[0], tokens[1:])


def strong_checker() -> AlignmentChecker:
    """The strongest checker (lexical + token alignment with the packaged MiniLM)."""
    return AlignmentChecker(MiniLMTokenEncoder())
