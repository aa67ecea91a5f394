"""The parts of the HTTP contract that depend on the server, not on one route.

* ``HEAD`` is answered wherever ``GET`` is (RFC 9110 asks it of every GET resource; it was
  405), with the GET response's headers and no body.
* The OpenAPI schema states what this server enforces: the question length limit it was
  configured with, and, when API keys are set, the bearer scheme every route but the open
  ones requires. Generated clients and schema-driven tests then meet the same rules the
  server applies.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings

#: Name of the bearer scheme in ``components.securitySchemes``.
BEARER = "bearerAuth"
#: Request fields limited to ``Settings.max_question_chars``: (schema name, property).
_QUESTION_FIELDS = (("AskRequest", "question"), ("SearchRequest", "query"))


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request is served as ``GET`` and its body dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def install_openapi(app: FastAPI, settings: Settings, open_paths: frozenset[str]) -> None:
    """Make ``app.openapi()`` state this server's question limit and, with keys, its auth."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        for model, field in _QUESTION_FIELDS:
            prop = components.get("schemas", {}).get(model, {}).get("properties", {}).get(field)
            if prop is not None:
                prop["maxLength"] = settings.max_question_chars
        if settings.api_keys:
            components.setdefault("securitySchemes", {})[BEARER] = {
                "type": "http", "scheme": "bearer",
                "description": "One of the server's GROUNDQA_API_KEYS."}
            schema["security"] = [{BEARER: []}]
            for path, item in schema.get("paths", {}).items():
                for operation in item.values():
                    if path in open_paths:
                        operation["security"] = []  # served without a key
                    else:
                        operation.setdefault("responses", {}).setdefault("401", {
                            "description": "A valid API key is required",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ErrorResponse"}}}})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
