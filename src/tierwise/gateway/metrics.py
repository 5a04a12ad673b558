"""Prometheus metrics, per tier. Each app gets its own registry, so several apps can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """The counters and histograms the gateway updates; exposed at `GET /metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierwise_requests", "Requests served, by tier and outcome", ["tier", "outcome"], registry=r
        )
        self.errors = Counter("tierwise_tier_errors", "Tier failures, by tier and kind", ["tier", "kind"], registry=r)
        self.failovers = Counter(
            "tierwise_failovers", "Requests moved to another tier after a failure", ["from_tier"], registry=r
        )
        self.cascade_checks = Counter(
            "tierwise_cascade_checks",
            "Answers checked by the cascade, by tier and result (kept|escalated|escalation_failed|no_stronger_tier)",
            ["tier", "result"],
            registry=r,
        )
        self.http_errors = Counter(
            "tierwise_http_errors", "Error responses sent to clients, by status", ["status"], registry=r
        )
        self.latency = Histogram(
            "tierwise_request_latency_seconds", "Whole-request latency", ["tier"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "tierwise_time_to_first_token_seconds", "Time to the first chunk", ["tier"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter("tierwise_tokens", "Tokens, by tier and kind (prompt|completion)", ["tier", "kind"],
                              registry=r)
        self.in_flight = Gauge("tierwise_in_flight_requests", "Requests being served", ["tier"], registry=r)
        self.queued = Gauge("tierwise_queued_requests", "Requests waiting for a tier's slot", ["tier"], registry=r)
        self.queue_rejections = Counter(
            "tierwise_queue_rejections", "Requests turned away by a full or slow tier queue", ["tier"], registry=r
        )
        self.tier_up = Gauge("tierwise_tier_up", "1 if the tier is considered available", ["tier"], registry=r)
