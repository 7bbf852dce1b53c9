"""Prometheus metrics for `GET /metrics`, counted by one ASGI middleware around the whole app, so every route (those
of other files included) is counted without doing anything.

    forgeml_requests_total{route,status}   requests answered, by route template ('/v1/predict') and status code
    forgeml_request_seconds{route}         time from the request's first byte to its answer's last
    forgeml_batch_size                     rows per forward pass (the batcher observes it)
    forgeml_queue_depth                    rows waiting for a forward pass

Each app has its own registry: two servers in one process (tests) do not share counts. With `--workers N` each worker
process counts its own requests; a scrape reaches one of them.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("forgeml_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("forgeml_request_seconds", "Seconds from a request's arrival to its answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("forgeml_batch_size", "Rows per forward pass", buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("forgeml_queue_depth", "Rows waiting for a forward pass", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: times each HTTP request and counts it under its route's template. A path that matched no route is
    counted as 'unmatched' (a fuzzer or a scanner must not make one time series per URL)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # FastAPI puts the matched route in the scope
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
