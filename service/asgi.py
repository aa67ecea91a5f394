"""ASGI entry point for uvicorn: ``uvicorn service.asgi:app`` (settings from GROUNDQA_*)."""

from service.http.app import create_app

app = create_app()
