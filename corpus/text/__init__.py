"""The one language layer: spaCy analysis, accent-folded names, content terms.

Used by index/, service/ and eval/ alike; it knows nothing of the corpus it is given.
"""

from corpus.text.analysis import nlp
from corpus.text.names import fold, names_in, present
from corpus.text.terms import content_terms, is_stop_word

__all__ = ["content_terms", "fold", "is_stop_word", "names_in", "nlp", "present"]
