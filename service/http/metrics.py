"""Prometheus metrics of one app instance: requests, latency, answering stages, outcomes.

Labels come from bounded sets only: the route template (``/v1/documents/{doc_id}``), never the
path asked for, and ``unmatched`` for paths no route serves. Responses given before routing
(401, 413) used to be labelled with the raw path, so 20,000 requests to made-up paths added
20,000 series and slowed every scrape.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match

from service.schemas import AskResponse

ANSWER_STAGES = ("retrieve", "select", "compose", "verify")
#: The route label of a request no route serves.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: MutableMapping[str, Any], routes: Sequence[BaseRoute]) -> str:
    """The template of the route serving ``scope``'s path (any method), or ``UNMATCHED``.

    The router records the route it chose in the scope; a response given before routing (a
    missing key, a body over the limit) is matched here against ``routes``, which must list
    the routes themselves (FastAPI keeps an included router as one entry without a path).
    """
    route = scope.get("route")
    if isinstance(getattr(route, "path", None), str):
        return str(route.path)  # type: ignore[union-attr]
    partial = None
    for candidate in routes:
        if not isinstance(getattr(candidate, "path", None), str):
            continue  # an included router: its routes are listed separately
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED))
        if match == Match.PARTIAL and partial is None:
            partial = str(getattr(candidate, "path", UNMATCHED))
    return partial or UNMATCHED


def method_label(method: str) -> str:
    """The HTTP method, or ``other`` for a method outside the standard ones (any token is
    a valid method on the wire)."""
    return method if method in _METHODS else "other"


class Metrics:
    """Prometheus counters and histograms for one app instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("groundqa_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("groundqa_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.stage = Histogram("groundqa_ask_stage_seconds", "Time per answering stage",
                               ["stage"], registry=self.registry,
                               buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, 1))
        self.abstentions = Counter("groundqa_abstentions_total", "Questions not answered",
                                   ["reason"], registry=self.registry)
        self.answers = Counter("groundqa_answers_total", "Questions answered",
                               registry=self.registry)

    def observe_stages(self, result: AskResponse) -> None:
        """Record the time each answering stage took."""
        for stage in ANSWER_STAGES:
            self.stage.labels(stage).observe(getattr(result.timings_ms, stage) / 1000.0)

    def observe_outcome(self, result: AskResponse) -> None:
        """Count an answer, or an abstention by its reason."""
        if result.answerable:
            self.answers.inc()
        else:
            self.abstentions.labels(result.abstain_reason or "unknown").inc()
