"""The chat page: ``/`` and its assets under ``/static``, served without an API key.

The page itself holds no data; every API call it makes carries the key the user types in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.config import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Paths the auth middleware lets through: the page and its assets (no data in them).
OPEN_PREFIXES = ("/static/",)


def install_web(app: FastAPI, settings: Settings) -> None:
    """Serve the chat page at ``/`` and its assets at ``/static``."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{AUTH_REQUIRED}}", "true" if settings.api_keys else "false")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def chat_page() -> HTMLResponse:
        """The chat page."""
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
