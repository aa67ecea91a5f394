"""Support checking: is an answer sentence (claim) supported by the quote(s) it cites?

The service uses the **trained** checker (``SupportChecker.shipped()``): all-MiniLM-L6-v2
fine-tuned as a cross-encoder (``cross_encoder.py``, int8 ONNX in ``models/checker/``) whose
logit is combined with structural features (``structure.py``: anchors together in one
sentence, number context, dropped hedges, negation) in one calibrated logistic model
(``calibrated.py``); ``groundqa train checker`` reproduces both. Hard rules for generated
sentences (facts that must be in the cited evidence, framing lines, instructions inside
passages) are in ``facts.py``. When the model files are missing the checker says so and
falls back to the lexical model below.

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
