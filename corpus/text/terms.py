"""Content terms (lemmas without stop words or punctuation), from spaCy."""

from __future__ import annotations

from corpus.text.analysis import analyse, nlp


def is_stop_word(word: str) -> bool:
    """spaCy's English stop-word list."""
    return word.lower() in nlp().Defaults.stop_words


def content_terms(text: str) -> tuple[str, ...]:
    """Lower-cased lemmas of the words that carry content, in order, without repeats."""
    doc = analyse(text)
    lemmas = (t.lemma_.lower() for t in doc
              if not (t.is_stop or t.is_punct or t.is_space) and any(c.isalnum() for c in t.text))
    return tuple(dict.fromkeys(lemmas))
