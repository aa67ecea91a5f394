"""A client for a running groundqa server, so ``groundqa ask`` and ``groundqa search`` can use
it instead of loading the model in-process (8–9 s per command).

Responses are validated into the same schemas the in-process service returns, so the CLI prints
them the same way. Every failure (server unreachable, refused key, bad input, server error)
becomes one ``RemoteError`` with a message a user can act on.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from corpus.errors import GroundQAError
from service.schemas import AskRequest, AskResponse, SearchRequest, SearchResponse

#: Answers are computed on the server's CPU, which may be queueing other requests.
DEFAULT_TIMEOUT_SECONDS = 120.0

ResponseModel = TypeVar("ResponseModel", bound=BaseModel)


class RemoteError(GroundQAError):
    """The server could not be reached or refused the request."""

    code = "remote_error"


class RemoteClient:
    """Calls ``/v1/ask`` and ``/v1/search`` of the server at ``base_url``."""

    def __init__(self, base_url: str, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 transport: httpx.BaseTransport | None = None) -> None:
        base_url = base_url.strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise RemoteError(f"--url must start with http:// or https://, got {base_url!r}")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout,
                                    transport=transport)

    def ask(self, request: AskRequest) -> AskResponse:
        """The server's answer, as the in-process service would return it."""
        return self._post("/v1/ask", request, AskResponse)

    def search(self, request: SearchRequest) -> SearchResponse:
        """The server's ranked passages."""
        return self._post("/v1/search", request, SearchResponse)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _post(self, path: str, request: BaseModel,
              response_model: type[ResponseModel]) -> ResponseModel:
        url = self.base_url + path
        try:
            response = self._client.post(path, json=request.model_dump(exclude_none=True))
        except httpx.TimeoutException:
            raise RemoteError(f"the groundqa server at {self.base_url} did not answer within "
                              f"{self._client.timeout.read:.0f} s") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the groundqa server at {self.base_url} "
                              f"({_reason(exc)}); is it running? (start one with "
                              "`groundqa serve`, or leave out --url / GROUNDQA_URL to answer "
                              "in-process)") from None
        if response.status_code >= 400:
            raise RemoteError(_refusal(url, response))
        try:
            return response_model.model_validate(response.json())
        except (ValueError, ValidationError):
            raise RemoteError(f"{url} did not return a groundqa response (HTTP "
                              f"{response.status_code}); is --url a groundqa server?") from None


def _reason(exc: httpx.HTTPError) -> str:
    """The innermost cause in a few words ("Connection refused", "Name or service not known")."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause).strip() or type(cause).__name__
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    return text.splitlines()[0]


def _refusal(url: str, response: httpx.Response) -> str:
    """One line from the server's JSON error envelope (or its status when there is none)."""
    message, code = "", ""
    try:
        body: Any = response.json()
        message = str(body["error"]["message"])
        code = str(body["error"]["code"])
    except (ValueError, KeyError, TypeError):
        pass
    if response.status_code == 401:
        return (f"the server at {url} needs an API key: pass --api-key or set "
                f"GROUNDQA_API_KEY ({message or 'unauthorized'})")
    if message:
        return f"{message} ({code}, HTTP {response.status_code} from {url})"
    return f"{url} answered HTTP {response.status_code}"
