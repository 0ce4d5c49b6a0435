"""Wire the metrics into one app: the stream observer, the HTTP middleware, ``/metrics``.

Kept apart from ``metrics.py`` (what is measured) because this is about Flask: which hook
records the route template, where the request clock starts, and whether ``/metrics`` is on the
public port or, when ``TABLESTREAM_METRICS_PORT`` is set, only on the separate one that
``tablestream serve`` opens (so the public port never shows internals).
"""

from __future__ import annotations

import time

from flask import Flask, Response, request

from ..stream.body import StreamObserver
from .httpmetrics import ROUTE_KEY, START_KEY, UNMATCHED, HttpMetricsMiddleware
from .metrics import Metrics

__all__ = ["install_metrics"]


def install_metrics(app: Flask, metrics: Metrics, *, public_endpoint: bool) -> None:
    runtime = app.extensions["tablestream"]

    def stream_metrics(table: str) -> StreamObserver:
        started = request.environ.get(START_KEY) or time.perf_counter()
        return metrics.stream_observer(table, started)

    runtime.observer_factories.append(stream_metrics)

    @app.before_request
    def record_route() -> None:
        rule = request.url_rule
        request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED

    if public_endpoint:

        @app.get("/metrics")
        def metrics_endpoint() -> Response:
            return Response(metrics.exposition(), content_type=metrics.content_type)

    app.wsgi_app = HttpMetricsMiddleware(app.wsgi_app, metrics)  # type: ignore[method-assign]
    metrics.start_sampler()
