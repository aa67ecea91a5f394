"""The error hierarchy shared by every layer.

Core code raises these; the HTTP edge maps them to 4xx JSON and the CLI to a one-line message.
Each carries a stable machine-readable ``code`` and the HTTP status it maps to.
"""

from __future__ import annotations


class GroundQAError(Exception):
    """Base class for errors caused by input or state a user can fix."""

    code = "groundqa_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DocumentLoadError(GroundQAError):
    """A file could not be turned into a Document (missing, binary, empty, unsupported)."""

    code = "document_unreadable"
    status = 422


class IndexNotFound(GroundQAError):
    """No index exists in the data directory."""

    code = "index_not_found"
    status = 503


class IndexCorrupt(GroundQAError):
    """The index on disk is incomplete or damaged."""

    code = "index_corrupt"
    status = 503


class EmbeddingMismatch(GroundQAError):
    """The index was built with a different embedding model or dimension."""

    code = "embedding_mismatch"
    status = 409


class DocumentNotFound(GroundQAError):
    """A document id that is not in the index."""

    code = "document_not_found"
    status = 404


class EmptyQuestion(GroundQAError):
    """A question that is empty or only whitespace."""

    code = "empty_question"
    status = 422


class InvalidRequest(GroundQAError):
    """A request that is well-formed JSON but asks for something invalid."""

    code = "invalid_request"
    status = 422


class IndexBusy(GroundQAError):
    """Another writer holds the index lock."""

    code = "index_busy"
    status = 409
