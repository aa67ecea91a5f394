"""Support checking: is an answer sentence (claim) supported by the quote(s) it cites?

Three logistic models over hand-made features (weights in ``support_weights.json``, fitted on
WiCE dev by ``python -m eval.checker --wice ../shared/datasets/wice --fit``):

- **lexical** (the service's default, ~1-3 ms): content-token coverage with light stemming and
  static-vector partial credit, number agreement with normalisation, capitalised-name coverage
  and count of missing names, negation agreement.
- **embedding**: lexical + the sentence cosine of claim and best quotes (comparison only).
- **alignment** (the strong model, for offline evaluation; lives in ``eval/checker_alignment.py``):
  lexical + BERTScore-style alignment of the claim's IDF-weighted words to the quotes'
  contextual MiniLM word pieces.

Rooms: ``analysis.py`` (claim/quote normalisation and analysis), ``features.py`` (the features),
``model.py`` (logistic models, the weights file), ``verdict.py`` (label, result, thresholds) and
``checker.py`` (``SupportChecker``).
"""

from service.support.analysis import extract_numbers, strip_attribution
from service.support.checker import SupportChecker
from service.support.features import split_claim
from service.support.model import LogisticModel, SupportModels
from service.support.verdict import SupportLabel, SupportResult, SupportThresholds

__all__ = [
    "LogisticModel",
    "SupportChecker",
    "SupportLabel",
    "SupportModels",
    "SupportResult",
    "SupportThresholds",
    "extract_numbers",
    "split_claim",
    "strip_attribution",
]
