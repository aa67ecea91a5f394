"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.core import QAService
from service.http.deps import AppMetrics
from service.http.errors import error_response, error_responses

router = APIRouter(tags=["ops"])


# async: liveness must not wait for a threadpool thread that /v1/ask work may be holding.
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
def readyz(request: Request) -> Response:
    """Readiness: an index version is loaded ("degraded" when a newer one was refused)."""
    svc: QAService | None = getattr(request.app.state, "service", None)
    if svc is None or not svc.ready:
        return error_response(503, "not_ready", "no index is loaded yet")
    live = svc.live()
    assert live.snapshot is not None
    body: dict[str, object] = {"status": "ready", "index_version": live.snapshot.version,
                               "documents": live.snapshot.document_count,
                               "chunks": live.snapshot.chunk_count}
    problem = svc.index_problem
    if problem is not None:
        # Still answering from the last good version (so not 503), but an operator must act.
        body.update(status="degraded", problem={"code": problem.code, "message": problem.message})
    return JSONResponse(body)


@router.get("/metrics", response_class=Response)
def prometheus_metrics(metrics: AppMetrics) -> Response:
    """Prometheus metrics: requests and latency by route, stage latency, abstentions."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
