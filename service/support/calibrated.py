"""The trained support model: cross-encoder logit + structural features → calibrated P(supported).

``models/checker/`` holds ``model.onnx`` (the cross-encoder, ``cross_encoder.py``) and
``calibration.json`` (a standardised logistic model over the cross-encoder's logit and the
features of ``structure.py``, fitted on dev claims only, with its threshold), both written by
``groundqa train checker``. ``TrainedSupport.load`` returns ``None`` when either file is
missing, and the checker then says so once and uses its lexical model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.support.cross_encoder import DEFAULT_MODEL_DIR, CrossEncoder
from service.support.model import LogisticModel
from service.support.structure import STRUCTURAL_FEATURES, structural_features

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
MODEL_FEATURES = ("ce_logit", *STRUCTURAL_FEATURES)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of to in on at for by with and or but is are was were be been being it its this "
    "that these those as from has have had he she they we you i his her their our which who "
    "will would can could may might also than then there".split())


def word_coverage(claim: str, quotes: Sequence[str]) -> float:
    """The trivial baseline: share of the claim's content words found in the evidence."""
    words = [w for w in _WORD.findall(claim.lower()) if w not in _STOP]
    if not words:
        return 0.0
    evidence = set(_WORD.findall(" ".join(quotes).lower()))
    return sum(w in evidence for w in words) / len(words)


@dataclass
class TrainedSupport:
    """The shipped cross-encoder with its calibrated combination and thresholds."""

    encoder: CrossEncoder
    model: LogisticModel
    threshold: float
    partial: float
    baseline_threshold: float
    directory: Path

    @classmethod
    def load(cls, directory: Path | None = None, threads: int | None = None
             ) -> TrainedSupport | None:
        """The model in ``directory`` (default: the shipped one), or ``None`` if incomplete."""
        root = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
        onnx_file, calibration_file = root / "model.onnx", root / CALIBRATION_FILE
        if not onnx_file.is_file() or not calibration_file.is_file():
            return None
        data = json.loads(calibration_file.read_text(encoding="utf-8"))
        return cls(CrossEncoder(onnx_file, threads=threads),
                   LogisticModel.from_json(data["model"]), float(data["threshold"]),
                   float(data["partial"]), float(data.get("baseline_threshold", 0.5)), root)

    def probabilities(self, items: Sequence[tuple[str, Sequence[str]]]) -> np.ndarray:
        """Calibrated P(supported) for each (claim, quotes)."""
        return self.scores(items)[0]

    def scores(self, items: Sequence[tuple[str, Sequence[str]]]
               ) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated P(supported), the cross-encoder's best-window logit) per item."""
        logits = np.maximum(self.encoder.claim_logits(items), -30.0)
        out = np.zeros(len(items))
        for i, ((claim, quotes), logit) in enumerate(zip(items, logits, strict=True)):
            values = {"ce_logit": float(logit)}
            values.update(structural_features(claim, quotes))
            out[i] = self.model.score(values)
        return out, logits
