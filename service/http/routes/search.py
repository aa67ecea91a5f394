"""Passage search: ranked passages with their dense, lexical and fused scores."""

from __future__ import annotations

from fastapi import APIRouter

from service.http.deps import Service
from service.http.errors import error_responses
from service.schemas import SearchRequest, SearchResponse

router = APIRouter(tags=["qa"])


@router.post("/v1/search", response_model=SearchResponse,
             responses=error_responses(400, 401, 404, 413, 415, 422, 503))
def search(body: SearchRequest, svc: Service) -> SearchResponse:
    """Ranked passages (dense, lexical and fused scores) for a query."""
    return svc.search(body)
