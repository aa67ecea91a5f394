"""Passage search: ranked passages with their dense, lexical and fused scores."""

from __future__ import annotations

from fastapi import APIRouter

from service.http.chat import check_length
from service.http.deps import Service, Slots
from service.http.errors import error_responses
from service.schemas import SearchRequest, SearchResponse

router = APIRouter(tags=["qa"])


@router.post("/v1/search", response_model=SearchResponse,
             responses=error_responses(400, 401, 404, 408, 413, 415, 422, 503))
async def search(body: SearchRequest, svc: Service, slots: Slots) -> SearchResponse:
    """Ranked passages (dense, lexical and fused scores) for a query."""
    check_length(body.query, svc.settings.max_question_chars)
    return await slots.run(svc.search, body)
