"""The support models: standardised logistic regressions and their fitted thresholds.

Weights live in ``support_weights.json`` beside this module, fitted on WiCE dev by
``python -m eval.checker --wice ../shared/datasets/wice --fit``. Besides the lexical model the
service uses, the file holds the embedding and alignment models that eval/ compares.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from service.support.verdict import SupportThresholds

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "support_weights.json"


@dataclass(frozen=True)
class LogisticModel:
    """Standardised logistic regression: p = sigmoid(bias + w · (x - mean) / scale)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def score(self, values: dict[str, float]) -> float:
        """Probability that the claim is supported."""
        z = self.bias
        for name, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True):
            z += w * (values[name] - m) / s
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "features": list(self.features),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(m, 6) for m in self.mean],
            "scale": [round(s, 6) for s in self.scale],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticModel:
        """Inverse of ``to_json``."""
        return cls(
            features=tuple(data["features"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            mean=tuple(float(m) for m in data["mean"]),
            scale=tuple(float(s) for s in data["scale"]),
        )


# Used only when support_weights.json is missing (e.g. before the first fit).
_FALLBACK_LEXICAL = LogisticModel(
    features=("cover", "bigram_cover", "entity_cover", "number_missing", "negation_mismatch"),
    weights=(2.0, 0.8, 0.6, -1.0, -0.8),
    bias=-0.5,
    mean=(0.7, 0.5, 0.8, 0.1, 0.1),
    scale=(0.2, 0.3, 0.3, 0.3, 0.3),
)


@dataclass(frozen=True)
class SupportModels:
    """The fitted models (lexical, lexical+sentence cosine, lexical+token alignment), thresholds."""

    lexical: LogisticModel
    embedding: LogisticModel | None
    lexical_thresholds: SupportThresholds
    embedding_thresholds: SupportThresholds
    meta: dict[str, Any] = field(default_factory=dict)
    alignment: LogisticModel | None = None
    alignment_thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    @classmethod
    def load(cls, path: str | None = None) -> SupportModels:
        """Load weights from ``path`` or the packaged ``service/support/support_weights.json``."""
        try:
            if path is None:
                text = resources.files("service.support").joinpath(WEIGHTS_FILE).read_text("utf-8")
            else:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
        except FileNotFoundError:
            logger.warning("support weights not found; using built-in fallback weights")
            return cls(_FALLBACK_LEXICAL, None, SupportThresholds(), SupportThresholds())
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SupportModels:
        """Build from the JSON layout written by ``eval.checker fit``."""
        def thresholds(d: dict[str, float]) -> SupportThresholds:
            return SupportThresholds(
                supported=d["supported"], partial=d["partial"], binary=d["binary"]
            )

        emb = data.get("embedding")
        align = data.get("alignment")
        return cls(
            lexical=LogisticModel.from_json(data["lexical"]["model"]),
            embedding=LogisticModel.from_json(emb["model"]) if emb else None,
            lexical_thresholds=thresholds(data["lexical"]["thresholds"]),
            embedding_thresholds=thresholds(emb["thresholds"]) if emb else SupportThresholds(),
            meta=data.get("meta", {}),
            alignment=LogisticModel.from_json(align["model"]) if align else None,
            alignment_thresholds=(
                thresholds(align["thresholds"]) if align else SupportThresholds()
            ),
        )

    def for_mode(self, mode: str) -> tuple[LogisticModel, SupportThresholds]:
        """The model and thresholds of ``mode``; the lexical ones when ``mode`` was not fitted."""
        if mode == "alignment" and self.alignment is not None:
            return self.alignment, self.alignment_thresholds
        if mode == "embedding" and self.embedding is not None:
            return self.embedding, self.embedding_thresholds
        return self.lexical, self.lexical_thresholds


@lru_cache(maxsize=1)
def packaged_models() -> SupportModels:
    """The models in the packaged weights file, loaded once."""
    return SupportModels.load()

