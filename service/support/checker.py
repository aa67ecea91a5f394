"""The support checker: is an answer sentence (claim) supported by the quote(s) it cites?

Hand-made features (``features.py``) go through a fitted logistic model (``model.py``); the score
in [0, 1] becomes supported / partial / unsupported by fitted thresholds. Hard rules sit on top in
every mode: a verbatim copy is supported, a number or negation that disagrees with the quotes
makes the claim unsupported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from service.support.analysis import AnalysedText, analyse, strip_attribution
from service.support.calibrated import TrainedSupport
from service.support.features import (
    LexicalFeatures,
    embedding_features,
    is_verbatim,
    lexical_features,
)
from service.support.model import SupportModels, packaged_models
from service.support.verdict import SupportLabel, SupportResult, SupportThresholds

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from index.embedding import Embedder

#: Quotes beyond this many are pre-selected lexically before embedding (WiCE-style long evidence).
MAX_EMBEDDED_QUOTES = 8


class SupportChecker:
    """Decides whether a claim is supported by the quotes it cites.

    Two models, chosen by what the checker is given (``mode`` says which is in force):

    - ``"lexical"`` (no embedder): hand-made lexical features; ~1-3 ms per check. The service's
      default (``service/core.py`` builds ``SupportChecker()``).
    - ``"embedding"`` (``embedder`` given, or vectors passed to ``check``): adds the sentence
      cosine. Kept for comparison; it does not beat the lexical model on WiCE.

    - ``"trained"`` (``trained`` given; what ``SupportChecker.shipped()`` builds and the
      service uses): the fine-tuned cross-encoder plus structural features, calibrated
      (``calibrated.py``); a verbatim quote is still supported without running it.

    eval/ adds a third, token alignment, by overriding ``mode`` and ``_extra_features``
    (``AlignmentChecker`` in ``eval/checker_alignment.py``). ``thresholds`` overrides the fitted
    thresholds of whichever model is used.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        thresholds: SupportThresholds | None = None,
        models: SupportModels | None = None,
        trained: TrainedSupport | None = None,
    ) -> None:
        self.embedder = embedder
        self.models = models or packaged_models()
        self._thresholds = thresholds
        self.trained = trained

    @classmethod
    def shipped(cls, threads: int | None = None) -> SupportChecker:
        """The trained checker of ``models/checker/``; the lexical one, with a warning, when
        that model is missing (e.g. a source checkout without the model files)."""
        trained = _shipped_trained(threads)
        if trained is None:
            logger.warning("trained support checker not found in service/support/models/"
                           "checker (run `groundqa train checker`); using the lexical checker")
        return cls(trained=trained)

    @property
    def mode(self) -> str:
        """The model ``check`` uses: ``"trained"``, ``"embedding"`` or ``"lexical"``."""
        if self.trained is not None:
            return "trained"
        if self.embedder is not None and self.models.embedding is not None:
            return "embedding"
        return "lexical"

    def thresholds_for(self, with_embeddings: bool) -> SupportThresholds:
        """The thresholds in force for the lexical or the embedding model."""
        return self.thresholds_for_mode("embedding" if with_embeddings else "lexical")

    def thresholds_for_mode(self, mode: str) -> SupportThresholds:
        """The thresholds in force for ``mode`` ("lexical", "embedding" or "alignment")."""
        if self._thresholds is not None:
            return self._thresholds
        if mode == "trained" and self.trained is not None:
            return SupportThresholds(supported=self.trained.threshold,
                                     partial=self.trained.partial, binary=self.trained.threshold)
        return self.models.for_mode(mode)[1]

    def features(
        self,
        claim: str,
        quotes: Sequence[str],
        *,
        claim_vector: np.ndarray | None = None,
        quote_vectors: np.ndarray | None = None,
    ) -> dict[str, float]:
        """The raw feature values (for fitting and debugging), a subclass's own included."""
        stripped = strip_attribution(claim)
        claim_t = analyse(stripped)
        quote_ts = [analyse(q) for q in quotes]
        feats = lexical_features(claim_t, quote_ts)
        values = dict(feats.values)
        if claim_vector is not None and quote_vectors is not None and len(quotes):
            values.update(embedding_features(claim_vector, quote_vectors, feats.selected))
        if len(quotes):
            values.update(self._extra_features(stripped, claim, quotes))
        return values

    def check(
        self,
        claim: str,
        quotes: Sequence[str],
        *,
        claim_vector: np.ndarray | None = None,
        quote_vectors: np.ndarray | None = None,
    ) -> SupportResult:
        """Label one claim against its quotes.

        ``claim_vector`` / ``quote_vectors`` (unit vectors, quotes in order) skip the embedding
        call; they should embed the claim as given (attribution prefixes barely move MiniLM).
        """
        if self.trained is not None:
            return self._check_trained([(claim, quotes)])[0]
        return self._check(claim, quotes, claim_vector, quote_vectors)

    def check_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportResult]:
        """Check several (claim, quotes) pairs with a single batched embedding call."""
        if self.trained is not None:
            return self._check_trained(pairs)
        if self.embedder is None or self.models.embedding is None:
            return [self.check(claim, quotes) for claim, quotes in pairs]
        plans: list[tuple[str, list[str], list[int]] | None] = []
        texts: dict[str, int] = {}
        for claim, quotes in pairs:
            kept = [q for q in quotes if q and q.strip()]
            if not kept:
                plans.append(None)
                continue
            chosen = embedding_subset(analyse(strip_attribution(claim)), kept)
            for text in [claim, *(kept[i] for i in chosen)]:
                texts.setdefault(text, len(texts))
            plans.append((claim, kept, chosen))
        vectors = self.embedder.embed(list(texts)) if texts else None
        results: list[SupportResult] = []
        for plan in plans:
            if plan is None or vectors is None:
                results.append(SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("no quote",)))
                continue
            claim, kept, chosen = plan
            claim_vector = vectors[texts[claim]]
            quote_vectors = _scatter(vectors, [texts[kept[i]] for i in chosen], chosen, len(kept))
            results.append(
                self.check(claim, kept, claim_vector=claim_vector, quote_vectors=quote_vectors)
            )
        return results

    # -- internals ----------------------------------------------------------------------------

    def _check_trained(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportResult]:
        """Label pairs with the trained model, in one batch; verbatim quotes skip the model."""
        assert self.trained is not None
        thresholds = self.thresholds_for_mode("trained")
        results: list[SupportResult | None] = []
        todo: list[tuple[int, str, list[str], tuple[str, ...]]] = []
        for index, (claim, quotes) in enumerate(pairs):
            kept = [q for q in quotes if q and q.strip()]
            stripped = strip_attribution(claim)
            claim_t = analyse(stripped)
            if not kept:
                results.append(SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("no quote",)))
                continue
            quote_ts = [analyse(q) for q in kept]
            if not claim_t.stem_set and not claim_t.numbers:
                results.append(_without_content(claim_t, quote_ts))
                continue
            feats = lexical_features(claim_t, quote_ts)
            if feats.verbatim:
                results.append(SupportResult(SupportLabel.SUPPORTED, 0.99,
                                             ("verbatim in quote",)))
                continue
            results.append(None)
            todo.append((index, stripped, kept, feats.reasons))
        if todo:
            probs = self.trained.probabilities([(claim, kept) for _, claim, kept, _ in todo])
            for (index, _, _, reasons), p in zip(todo, probs, strict=True):
                score = round(float(p), 4)
                results[index] = SupportResult(thresholds.label_for(score), score,
                                               (f"trained checker P(supported) {score:.2f}",
                                                *reasons))
        return [r for r in results if r is not None]

    def _extra_features(
        self, stripped: str, claim: str, quotes: Sequence[str]
    ) -> dict[str, float]:
        """The features a subclass's own model adds to the lexical ones (none here).

        ``check`` uses them when ``mode`` names that model rather than "lexical"/"embedding".
        """
        return {}

    def _check(
        self,
        claim: str,
        quotes: Sequence[str],
        claim_vector: np.ndarray | None,
        quote_vectors: np.ndarray | None,
    ) -> SupportResult:
        quotes = [q for q in quotes if q and q.strip()]
        if not quotes:
            return SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("no quote",))
        stripped = strip_attribution(claim)
        claim_t = analyse(stripped)
        quote_ts = [analyse(q) for q in quotes]
        if not claim_t.stem_set and not claim_t.numbers:
            return _without_content(claim_t, quote_ts)
        feats = lexical_features(claim_t, quote_ts)
        values = dict(feats.values)
        if self.mode not in ("lexical", "embedding"):
            values.update(self._extra_features(stripped, claim, quotes))
            return self._decide(values, feats, self.mode)

        use_embedding = self.models.embedding is not None and (
            (claim_vector is not None and quote_vectors is not None) or self.embedder is not None
        )
        if use_embedding:
            if claim_vector is None or quote_vectors is None:
                claim_vector, quote_vectors = self._embed(claim, quotes, quote_ts, claim_t)
            values.update(embedding_features(claim_vector, quote_vectors, feats.selected))
        return self._decide(values, feats, "embedding" if use_embedding else "lexical")

    def _embed(
        self,
        claim: str,
        quotes: Sequence[str],
        quote_ts: Sequence[AnalysedText],
        claim_t: AnalysedText,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.embedder is not None
        chosen = embedding_subset(claim_t, quotes, quote_ts)
        vectors = self.embedder.embed([claim, *(quotes[i] for i in chosen)])
        quote_vectors = _scatter(vectors, list(range(1, len(chosen) + 1)), chosen, len(quotes))
        return vectors[0], quote_vectors

    def _decide(
        self, values: dict[str, float], feats: LexicalFeatures, mode: str
    ) -> SupportResult:
        model = self.models.for_mode(mode)[0]
        thresholds = self.thresholds_for_mode(mode)
        score = model.score(values)
        reasons = list(feats.reasons)
        if feats.verbatim:
            score = max(score, 0.99)
            reasons = ["verbatim in quote"]
        elif feats.missing_numbers or feats.negation_mismatch:
            # A disagreeing number or negation is a factual conflict, whatever the overlap says.
            score = min(score, thresholds.partial * 0.9)
        return SupportResult(thresholds.label_for(score), round(score, 4), tuple(reasons))


def _without_content(claim_t: AnalysedText, quote_ts: Sequence[AnalysedText]) -> SupportResult:
    """A claim with no content word or number: supported when it is a span of its quote (a
    short answer such as "thousands"), else there is nothing to compare."""
    if is_verbatim(claim_t, quote_ts):
        return SupportResult(SupportLabel.SUPPORTED, 0.99, ("verbatim in quote",))
    return SupportResult(SupportLabel.UNSUPPORTED, 0.0, ("claim has no content",))


def embedding_subset(
    claim_t: AnalysedText, quotes: Sequence[str], quote_ts: Sequence[AnalysedText] | None = None
) -> list[int]:
    """Indices of quotes worth embedding: all if few, else the top lexical matches."""
    if len(quotes) <= MAX_EMBEDDED_QUOTES:
        return list(range(len(quotes)))
    ts = quote_ts if quote_ts is not None else [analyse(q) for q in quotes]
    overlap = [len(claim_t.stem_set & t.stem_set) for t in ts]
    order = sorted(range(len(quotes)), key=lambda i: (-overlap[i], i))
    return sorted(order[:MAX_EMBEDDED_QUOTES])


def _scatter(vectors: np.ndarray, rows: Sequence[int], chosen: Sequence[int], n: int) -> np.ndarray:
    """An (n, dim) matrix with embedded quotes in place and zero vectors for the skipped ones."""
    out = np.zeros((n, vectors.shape[1]), np.float32)
    if chosen:
        out[list(chosen)] = vectors[list(rows)]
    return out


@lru_cache(maxsize=4)
def _shipped_trained(threads: int | None) -> TrainedSupport | None:
    """The shipped trained model, loaded once per process (``None`` when missing)."""
    return TrainedSupport.load(threads=threads)
