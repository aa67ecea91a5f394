"""The chat page at ``/`` (its assets are mounted at ``/static`` by the app)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service.http.deps import AppSettings
from service.http.web import chat_page_html

router = APIRouter()


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def chat_page(settings: AppSettings) -> HTMLResponse:
    """The chat page."""
    return HTMLResponse(chat_page_html(bool(settings.api_keys)),
                        headers={"Cache-Control": "no-cache"})
