"""How the evaluation obtains answers: from a live service over HTTP or the core in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import httpx


class EvalClientError(Exception):
    """Base class for failures talking to the service under evaluation."""


class AskFailed(EvalClientError):
    """The service returned an error for one question (recorded; the run goes on)."""


class ServiceUnreachable(EvalClientError):
    """The service cannot be reached or built at all (the run stops)."""


class AskClient(Protocol):
    """Anything that answers a question with a /v1/ask JSON response and serves article text."""

    def ask(self, question: str, top_k: int) -> dict[str, Any]:
        """Return the /v1/ask response for ``question`` as JSON-compatible data."""
        ...

    def document_text(self, doc_id: str) -> str:
        """Return the cleaned article text that citation spans index into."""
        ...


def _error_message(response: httpx.Response) -> str:
    """Pull the service's ``{"error": {"message"}}`` out of an error response, if present."""
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


class HttpAskClient:
    """Ask a running groundqa service: POST /v1/ask, GET /v1/documents/{id} (cached)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # Both common spellings, so the key works whichever header the service reads.
        headers = {"Authorization": f"Bearer {api_key}", "X-API-Key": api_key} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._documents: dict[str, str] = {}

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code in (401, 403):
            raise ServiceUnreachable(
                f"{self.base_url} refused the request ({response.status_code}): "
                f"{_error_message(response)}"
            )
        if response.is_error:
            raise AskFailed(
                f"{method} {path} -> {response.status_code}: {_error_message(response)}"
            )
        data = response.json()
        if not isinstance(data, dict):
            raise AskFailed(f"{method} {path} returned {type(data).__name__}, expected an object")
        return data

    def ask(self, question: str, top_k: int) -> dict[str, Any]:
        """POST the question to /v1/ask and return the JSON response."""
        return self._request("POST", "/v1/ask", json={"question": question, "top_k": top_k})

    def document_text(self, doc_id: str) -> str:
        """GET /v1/documents/{doc_id} once and return its "text"."""
        if doc_id not in self._documents:
            data = self._request("GET", f"/v1/documents/{doc_id}")
            self._documents[doc_id] = str(data["text"])
        return self._documents[doc_id]

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._http.close()


class InProcessAskClient:
    """Ask the question-answering core directly, built from a data directory (no HTTP)."""

    def __init__(self, data_dir: str | Path, min_confidence: float | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.min_confidence = min_confidence
        self._service: Any = None
        self._documents: dict[str, str] = {}

    def _svc(self) -> Any:
        # Imported lazily: building the service loads the model and index, which is slow and
        # not needed by anyone who only evaluates a remote URL.
        if self._service is None:
            from corpus.errors import GroundQAError
            from service.config import Settings
            from service.core import QAService

            try:
                self._service = QAService.from_settings(Settings(data_dir=self.data_dir))
            except GroundQAError as exc:
                raise ServiceUnreachable(
                    f"cannot load the service from {self.data_dir}: {exc}"
                ) from exc
        return self._service

    def service(self) -> Any:
        """The in-process ``QAService`` (built on first use)."""
        return self._svc()

    def ask(self, question: str, top_k: int) -> dict[str, Any]:
        """Run the question through ``QAService.ask`` and return the JSON-mode dump."""
        from corpus.errors import GroundQAError
        from service.schemas import AskRequest

        service = self._svc()
        try:
            response = service.ask(AskRequest(question=question, top_k=top_k,
                                              min_confidence=self.min_confidence))
        except GroundQAError as exc:
            raise AskFailed(str(exc)) from exc
        return response.model_dump(mode="json")

    def document_text(self, doc_id: str) -> str:
        """Return the indexed document's cleaned text (object with ``.text`` or dict)."""
        if doc_id not in self._documents:
            document = self._svc().get_document(doc_id)
            text = document["text"] if isinstance(document, dict) else document.text
            self._documents[doc_id] = str(text)
        return self._documents[doc_id]
