"""The chat page's files: ``index.html`` (served at ``/``) and its assets under ``/static``.

The page itself holds no data; every API call it makes carries the key the user types in.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Paths the auth middleware lets through: the page and its assets (no data in them).
OPEN_PREFIXES = ("/static/",)


@lru_cache(maxsize=2)
def chat_page_html(auth_required: bool) -> str:
    """The chat page, told whether the server asks for an API key."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return page.replace("{{AUTH_REQUIRED}}", "true" if auth_required else "false")


def mount_static(app: FastAPI) -> None:
    """Serve the page's assets at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
