"""What the support checker answers: a three-way label, a score and the cut-offs between them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SupportLabel(enum.StrEnum):
    """Three-way verdict on a claim given its cited quotes."""

    SUPPORTED = "supported"
    PARTIAL = "partial"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class SupportResult:
    """A verdict, its score in [0, 1] and human-readable reasons."""

    label: SupportLabel
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupportThresholds:
    """Score cut-offs.

    ``supported`` is strict (chosen for high precision on WiCE dev), ``partial`` is the lower
    bound of the middle band, and ``binary`` is the balanced-accuracy-optimal cut-off used when a
    caller needs a yes/no answer (e.g. ALCE citation recall): ``score >= binary``.
    """

    supported: float = 0.6
    partial: float = 0.3
    binary: float = 0.45

    def label_for(self, score: float) -> SupportLabel:
        """Map a score to a three-way label."""
        if score >= self.supported:
            return SupportLabel.SUPPORTED
        if score >= self.partial:
            return SupportLabel.PARTIAL
        return SupportLabel.UNSUPPORTED
