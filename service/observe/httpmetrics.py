"""HTTP request metrics: every request counted and timed by a WSGI middleware, to its last byte.

A middleware rather than a Flask hook because Flask's ``after_request`` runs when the view
returns the generator, long before a streamed page's last byte: here the clock stops when the
server closes the body (``ClosingBody``). The route label is the matched route template that
``instrumentation.py`` records in the environ, never the raw URL, so the series stay few.
The metric objects themselves are declared in ``metrics.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .closing import ClosingBody

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["ROUTE_KEY", "START_KEY", "UNMATCHED", "HttpMetricsMiddleware"]

START_KEY = "tablestream.start"  # environ: perf_counter() when the request reached the app
ROUTE_KEY = "tablestream.route"  # environ: the matched route template, set by the app
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetricsMiddleware:
    """Counts and times every request; the clock stops when the server closes the body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        started = time.perf_counter()
        environ[START_KEY] = started
        status: list[str] = []

        def capture(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        method = environ.get("REQUEST_METHOD", "")
        method = method if method in _METHODS else "other"
        try:
            body = self._app(environ, capture)
        except BaseException:
            self._observe(method, environ, "500", started)
            raise
        return ClosingBody(
            body, lambda: self._observe(method, environ, status[-1] if status else "500", started)
        )

    def _observe(self, method: str, environ: dict[str, Any], status: str, started: float) -> None:
        route = environ.get(ROUTE_KEY, UNMATCHED)
        self._metrics.http_requests.labels(method, route, status).inc()
        self._metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)
