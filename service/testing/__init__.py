"""Measuring the service from outside, shared by tests, benchmarks, load tests and docs.

``process`` runs a real ``tablestream serve`` and reads its memory and CPU; ``httpraw`` is a
tiny HTTP/1.1 client that keeps what ordinary clients hide (chunk boundaries, whether the
terminating chunk came); ``metricsread`` reads one sample from ``/metrics``. Nothing here is
used by the service itself.
"""

from .process import (
    ServerProcess,
    descriptor_census,
    free_port,
    process_cpu_seconds,
    refuses_connections,
    rss_bytes,
    temp_file_bytes,
    wait_ready,
)

__all__ = [
    "ServerProcess",
    "descriptor_census",
    "free_port",
    "process_cpu_seconds",
    "refuses_connections",
    "rss_bytes",
    "temp_file_bytes",
    "wait_ready",
]
