"""The shipped trained checker (cross-encoder + calibrated structure) and its fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.support import SupportChecker, SupportLabel
from service.support import checker as checker_module
from service.support.calibrated import TrainedSupport, word_coverage

QUOTE = ("About 4,000 fighters have gathered near the northern border of Veldania, a regional "
         "security commander said on Tuesday.")


@pytest.fixture(scope="module")
def trained() -> SupportChecker:
    checker = SupportChecker.shipped()
    assert checker.mode == "trained", "service/support/models/checker must ship with the code"
    return checker


def test_missing_model_files_fall_back_to_lexical_and_say_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert TrainedSupport.load(tmp_path) is None
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    assert TrainedSupport.load(tmp_path) is None  # no calibration.json beside it
    monkeypatch.setattr(checker_module, "_shipped_trained", lambda threads: None)
    with caplog.at_level(logging.WARNING):
        assert SupportChecker.shipped().mode == "lexical"
    assert "trained support checker not found" in caplog.text


def test_verbatim_quotes_skip_the_model(trained: SupportChecker) -> None:
    result = trained.check(QUOTE, [QUOTE])
    assert result.label == SupportLabel.SUPPORTED and result.reasons == ("verbatim in quote",)


def test_a_short_answer_span_of_its_quote_is_supported_without_content_words(
        trained: SupportChecker) -> None:
    span, contentless = trained.check_many([("About 4,000", [QUOTE]), ("thousands", [QUOTE])])
    assert span.label == SupportLabel.SUPPORTED and span.reasons == ("verbatim in quote",)
    assert contentless.label == SupportLabel.UNSUPPORTED  # not in the quote, nothing to compare
    quote = "Thousands of  fighters were seen."
    word, = trained.check_many([("thousands", [quote])])
    assert word.label == SupportLabel.SUPPORTED and word.reasons == ("verbatim in quote",)


def test_invented_figure_actor_and_negation_score_below_the_faithful_claim(
        trained: SupportChecker) -> None:
    faithful, *changed = trained.check_many([
        ("About 4,000 fighters gathered near the northern border, a commander said.", [QUOTE]),
        ("About one million fighters gathered near the northern border.", [QUOTE]),
        ("The Harbour Alliance confirmed that 4,000 fighters gathered near the border.",
         [QUOTE]),
        ("No fighters have gathered near the northern border of Veldania.", [QUOTE]),
    ])
    assert faithful.label != SupportLabel.UNSUPPORTED
    assert all(r.score < faithful.score for r in changed), [r.score for r in changed]
    assert all(0.0 <= r.score <= 1.0 for r in (faithful, *changed))


def test_thresholds_come_from_the_calibration_file(trained: SupportChecker) -> None:
    assert trained.trained is not None
    thresholds = trained.thresholds_for_mode("trained")
    assert thresholds.binary == trained.trained.threshold
    assert 0.0 < thresholds.partial < thresholds.supported < 1.0


def test_word_coverage_baseline() -> None:
    assert word_coverage("fighters gathered near the border", [QUOTE]) == 1.0
    assert word_coverage("sailors left the harbour", [QUOTE]) == 0.0
