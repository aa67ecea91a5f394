"""What routes are handed: the service, the settings, the metrics, the answer slots
(``Annotated`` aliases), and the API-key check the app's guard applies to every route but the
open ones.

The getters are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, so every
request would need a free thread just to look these up.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.core import QAService
from service.http.limits import AnswerSlots
from service.http.metrics import Metrics
from service.http.web import OPEN_PREFIXES

#: Paths served without a key: liveness, and "/" (the chat page: no data, its API calls need
#: the key). Adding one is a decision; tests/reliability/test_access.py pins the set.
OPEN_PATHS = frozenset({"/healthz", "/"})


async def get_service(request: Request) -> QAService:
    """The QAService built in the lifespan (or handed to ``create_app``)."""
    return request.app.state.service  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics  # type: ignore[no-any-return]


async def get_answer_slots(request: Request) -> AnswerSlots:
    """The slots that bound how many answers are computed at once."""
    return request.app.state.answer_slots  # type: ignore[no-any-return]


Service = Annotated[QAService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
Slots = Annotated[AnswerSlots, Depends(get_answer_slots)]


def needs_key(settings: Settings, path: str, method: str) -> bool:
    """Whether a request must carry an API key (keys configured, not an open path)."""
    return bool(settings.api_keys) and path not in OPEN_PATHS and method != "OPTIONS" \
        and not path.startswith(OPEN_PREFIXES)


def has_valid_key(settings: Settings, authorization: str) -> bool:
    """Whether an ``Authorization: Bearer <key>`` header names a configured key."""
    token = authorization[7:] if authorization[:7].lower() == "bearer " else ""
    # compare_digest over every key: the time taken does not tell which key nearly matched.
    return any(hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys)
