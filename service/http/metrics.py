"""Prometheus metrics of one app instance: requests, latency, answering stages, outcomes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.schemas import AskResponse

ANSWER_STAGES = ("retrieve", "select", "compose", "verify")


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
