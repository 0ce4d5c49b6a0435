"""The separate metrics port (``TABLESTREAM_METRICS_PORT``), started the same way everywhere.

One process serves its own registry there; the parent of ``--processes`` serves the sum of its
children's values, read from the multiprocess directory, so a scrape of the port always sees
the whole server whichever child would have answered on the main port.

prometheus_client's own exposition app answers, inside a small WSGI server of the standard
library (as ``prometheus_client.start_http_server`` runs it), with one header added: the
``Cache-Control`` every other response of the service carries (``security.py``), so no cache
between Prometheus and the port keeps the figures (issue 28).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

from ..config import Settings
from ..security import NOT_STORED
from .listening import bind_errors_exit

__all__ = ["serve_metrics_port"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not worth a line on stderr


class _Threads(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        """Bind without ``HTTPServer.server_bind``'s ``socket.getfqdn(host)``: a reverse DNS
        lookup, for a name nothing here uses, that blocked start-up for 10 s (two resolver
        timeouts) on a host whose DNS did not answer, with the main port already accepting."""
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()


def _not_stored(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def with_header(environ: dict[str, Any], start_response: Callable[..., Any]):
        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            headers.append(("Cache-Control", NOT_STORED))
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return with_header


def serve_metrics_port(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    multiprocess_dir: str = "",
) -> None:
    """Serve ``registry`` (or the aggregate of ``multiprocess_dir``) on the metrics port, from a
    daemon thread."""
    if registry is None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)
    host, port = settings.metrics_host, settings.metrics_port
    with bind_errors_exit(host, port, "TABLESTREAM_METRICS_HOST or TABLESTREAM_METRICS_PORT"):
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsServer", (_Threads,), {"address_family": family})
        server = make_server(
            host, port, _not_stored(make_wsgi_app(registry)), server_class, handler_class=_Quiet
        )
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
