"""Prometheus metrics: `/metrics`, answered to any valid access token.

Request metrics are labelled with the route template (`/v5/endpoints/
{endpoint_id}`), never the raw path, so endpoint ids and other values never
become labels. Projection lag and delivery states are read from the read
models when scraped, so they are right whichever process runs the
projections and the workers.

Each server process keeps its own counters; with several workers, each
answers for itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bootstrap import Container
from api.http.routing import authenticate

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED: Final = "unmatched"
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The metrics of one server process."""

    def __init__(self, container: Container) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "headwater_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "headwater_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.submissions = Counter(
            "headwater_submissions",
            "Public submissions by mode and outcome (accepted, deduplicated, "
            "refused reasons, and statuses of requests stopped earlier).",
            ["mode", "outcome"],
            registry=self.registry,
        )
        self.registry.register(ReadModelCollector(container))

    def submission(self, mode: str, outcome: str) -> None:
        self.submissions.labels(mode, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ReadModelCollector(Collector):
    """Projection lag and delivery states, read when Prometheus scrapes."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "headwater_projection_lag_events",
            "Events the projection has not applied yet.",
            labels=["projection"],
        )
        position = GaugeMetricFamily(
            "headwater_projection_position",
            "The last position the projection has applied.",
            labels=["projection"],
        )
        deliveries = GaugeMetricFamily(
            "headwater_deliveries",
            "Deliveries of triggered messages, by status.",
            labels=["status"],
        )
        try:
            for state in self._container.read_side.status():
                lag.add_metric([state["name"]], state["lag"])
                position.add_metric([state["name"]], state["position"])
            for status, count in self._container.deliveries.counts().items():
                deliveries.add_metric([status], count)
        except Exception:  # a scrape must not fail because the store is down
            logger.warning("could not read projection metrics", exc_info=True)
        yield lag
        yield position
        yield deliveries


class MetricsMiddleware:
    """Counts and times every request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if status >= 500:
                logger.warning("%s %s answered %d", method, template, status)
            else:
                logger.debug(
                    "%s %s answered %d in %.1f ms",
                    method,
                    template,
                    status,
                    elapsed * 1000,
                )


async def metrics_endpoint(request: Request) -> Response:
    """Any valid token may read the metrics."""
    await authenticate(request)
    metrics: Metrics = request.app.state.metrics
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=CONTENT_TYPE)


def submission_outcome(answer: Any) -> str:
    """The label of a recorded submission's outcome."""
    if getattr(answer, "duplicate", False):
        return "deduplicated"
    refusal = getattr(answer, "refusal", None)
    return f"refused:{refusal}" if refusal else "accepted"
