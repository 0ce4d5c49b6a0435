"""The separate metrics port (``TABLESTREAM_METRICS_PORT``), started the same way everywhere.

One process serves its own registry there; the parent of ``--processes`` serves the sum of its
children's values, read from the multiprocess directory, so a scrape of the port always sees
the whole server whichever child would have answered on the main port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from ..config import Settings
from .listening import bind_errors_exit

__all__ = ["serve_metrics_port"]


def serve_metrics_port(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    multiprocess_dir: str = "",
) -> None:
    """Serve ``registry`` (or the aggregate of ``multiprocess_dir``) on the metrics port."""
    if registry is None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)
    with bind_errors_exit(
        settings.metrics_host,
        settings.metrics_port,
        "TABLESTREAM_METRICS_HOST or TABLESTREAM_METRICS_PORT",
    ):
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
