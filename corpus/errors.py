"""The error hierarchy shared by every layer.

Core code raises these; the HTTP edge maps them to 4xx JSON (``service/http/errors.py`` holds
the status of each) and the CLI to a one-line message. Each carries a stable machine-readable
``code``; nothing here knows about HTTP.
"""

from __future__ import annotations


class GroundQAError(Exception):
    """Base class for errors caused by input or state a user can fix."""

    code = "groundqa_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DocumentLoadError(GroundQAError):
    """A file could not be turned into a Document (missing, binary, empty, unsupported)."""

    code = "document_unreadable"


class IndexNotFound(GroundQAError):
    """No index exists in the data directory."""

    code = "index_not_found"


class IndexCorrupt(GroundQAError):
    """The index on disk is incomplete or damaged."""

    code = "index_corrupt"


class EmbeddingMismatch(GroundQAError):
    """The index was built with a different embedding model or dimension."""

    code = "embedding_mismatch"


class DocumentNotFound(GroundQAError):
    """A document id that is not in the index."""

    code = "document_not_found"


class EmptyQuestion(GroundQAError):
    """A question that is empty or only whitespace."""

    code = "empty_question"


class InvalidRequest(GroundQAError):
    """A request that is well-formed JSON but asks for something invalid."""

    code = "invalid_request"


class IndexBusy(GroundQAError):
    """Another writer holds the index lock."""

    code = "index_busy"


class ModelNotFound(GroundQAError):
    """A model file the service needs (the reader, the decision model) is missing or unreadable."""

    code = "model_not_found"


class StoreUnavailable(GroundQAError):
    """The database holding the index does not answer (down, unreachable, out of connections);
    nothing was changed, and the same request can be retried."""

    code = "store_unavailable"


class InsufficientStorage(GroundQAError):
    """The disk (or quota) holding the index ran out of space while writing a new version."""

    code = "insufficient_storage"
