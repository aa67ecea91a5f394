"""Tests for service/support/model.py: the packaged weights file and the per-mode lookup."""

from __future__ import annotations

from service.support import SupportModels


def test_packaged_weights_are_read_from_the_package() -> None:
    models = SupportModels.load()
    assert str(models.meta.get("fitted_on", "")).startswith("WiCE")
    assert models.embedding is not None and models.alignment is not None


def test_for_mode_falls_back_to_the_lexical_model() -> None:
    models = SupportModels.load()
    lexical = (models.lexical, models.lexical_thresholds)
    assert models.for_mode("embedding") == (models.embedding, models.embedding_thresholds)
    assert models.for_mode("alignment") == (models.alignment, models.alignment_thresholds)
    assert models.for_mode("lexical") == lexical
    only_lexical = SupportModels(
        models.lexical, None, models.lexical_thresholds, models.lexical_thresholds
    )
    assert only_lexical.for_mode("embedding") == lexical
    assert only_lexical.for_mode("alignment") == lexical
