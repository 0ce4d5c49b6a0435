"""Every Prometheus metric of the service, declared once, counted where the bytes leave.

Stream metrics are updated by a ``StreamObserver`` (``streammetrics.py``) that
``TableStreamBody`` tells about each chunk it hands to waitress, so the counters equal what went
out, not what a template rendered, and nothing is done per row. HTTP metrics are kept by a WSGI
middleware (``httpmetrics.py``) that stops the clock when the server closes the response
iterable, so a streamed page is timed to its last byte (the usual Flask exporters stop when the
view returns the generator).

Each app gets its own ``CollectorRegistry`` so ``create_app`` can run many times in one
process. With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client writes values to files
shared by all worker processes and ``/metrics`` aggregates them; its ``process_*`` collectors
do not work there, so each process's resident memory is exported in both modes
(``processmemory.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector

from ..stream.body import StreamObserver
from .httpmetrics import ROUTE_KEY, START_KEY, UNMATCHED, HttpMetricsMiddleware
from .processmemory import ResidentMemoryCollector, SampledResidentMemory, resident_memory_bytes
from .streammetrics import StreamMetrics

# The middleware, its environ keys and the RSS reader were defined here; they stay importable.
__all__ = [
    "ROUTE_KEY",
    "START_KEY",
    "UNMATCHED",
    "HttpMetricsMiddleware",
    "Metrics",
    "resident_memory_bytes",
]

# The *_created series double what every scrape carries and nothing here graphs them.
disable_created_metrics()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    120, 300, 600)  # fmt: skip
_TTFB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def chunk_size_buckets(chunk_bytes: int) -> tuple[float, ...]:
    """Buckets around the configured chunk size: head and tail chunks below, coalesced above."""
    factors = (1 / 64, 1 / 16, 1 / 4, 1 / 2, 1, 1.25, 1.5, 2, 4)
    return tuple(float(int(chunk_bytes * f)) for f in factors)


class Metrics:
    """The metric objects of one app and the registry ``/metrics`` exposes."""

    def __init__(self, chunk_bytes: int, multiprocess_dir: str = "") -> None:
        self.multiprocess = bool(multiprocess_dir)
        # In multiprocess mode values live in files; the metric objects need no registry and
        # the exposition registry only aggregates the files.
        self.registry = CollectorRegistry()
        own = None if self.multiprocess else self.registry
        if self.multiprocess:
            MultiProcessCollector(self.registry, path=multiprocess_dir)
        else:
            ProcessCollector(registry=self.registry)
            self.registry.register(ResidentMemoryCollector())

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=own)

        self.chunks = counter(
            "tablestream_stream_chunks", "HTTP chunks handed to the server", ["table"]
        )
        self.bytes = counter(
            "tablestream_stream_bytes", "Body bytes handed to the server (as sent)", ["table"]
        )
        self.uncompressed_bytes = counter(
            "tablestream_stream_uncompressed_bytes",
            "Body bytes before content encoding (equal to bytes without compression)",
            ["table"],
        )
        self.rows = counter("tablestream_stream_rows", "Rows read from sources", ["table"])
        self.streams = counter(
            "tablestream_streams", "Streams ended, by outcome", ["table", "outcome"]
        )
        self.source_busy = counter(
            "tablestream_source_busy",
            "Streams refused with 503 because the source had no capacity (pool exhausted)",
            ["table"],
        )
        self.query_timeouts = counter(
            "tablestream_query_timeouts",
            "Queries refused with 503 for finding no first row within "
            "TABLESTREAM_QUERY_TIME_LIMIT_MS",
            ["table"],
        )
        self.facet_timeouts = counter(
            "tablestream_facet_timeouts",
            "Facet counts interrupted at TABLESTREAM_FACET_TIME_LIMIT_MS (answered timed_out)",
            ["table"],
        )
        self.streams_rejected = counter(
            "tablestream_streams_rejected",
            "Stream requests refused with 503 before they started: no free stream slot "
            "(slots_full), the client's cap (client_limit) or a draining server (draining)",
            ["reason"],
        )
        self.connections_rejected = counter(
            "tablestream_connections_rejected",
            "Connections closed at accept, before a byte was read: the address already held "
            "TABLESTREAM_CONNECTIONS_PER_CLIENT connections (per_client)",
            ["reason"],
        )
        self.connections_closed = counter(
            "tablestream_connections_closed",
            "Connections the server closed while they waited for a request: a header slower "
            "than TABLESTREAM_HEADER_MIN_RATE (header_rate) or than TABLESTREAM_HEADER_TIMEOUT "
            "(header_timeout), idle between requests (keepalive_timeout, channel_timeout), or "
            "the oldest waiting one, dropped for a new connection at the limit (at_limit)",
            ["reason"],
        )
        self.shared_store_errors = counter(
            "tablestream_shared_store_errors",
            "Decisions taken with this instance's own state because the shared store (Redis, "
            "TABLESTREAM_REDIS_URL) failed or failed less than a second ago, by what was asked: "
            "the per-client cap (client_cap), the failure budget (budget), the stream board "
            "(board), renewals of leases and records (keep)",
            ["what"],
        )
        self.auth_failures = counter(
            "tablestream_auth_failures",
            "Requests refused for their credentials: none (missing), not Bearer (malformed), "
            "unknown (invalid), expired, without the metrics scope (insufficient_scope), or "
            "from a client over its failure budget (throttled)",
            ["reason"],
        )
        self.identity_headers_ignored = counter(
            "tablestream_auth_identity_headers_ignored",
            "Requests from the trusted proxy's address whose user or group headers came "
            "without the sign-in proxy's secret and were dropped (a site that does not clear "
            "them, or a client on the proxy's host)",
            [],
        )
        self.access_file_broken = Gauge(
            "tablestream_access_file_broken",
            "1 while the tokens or policy file (label file) cannot be read or parsed since it "
            "changed: only its unchanged entries are in force, everything it removed or edited "
            "is refused; 0 when it read whole",
            ["file"],
            multiprocess_mode="livemax",
            registry=own,
        )
        self.chunk_size = Histogram(
            "tablestream_stream_chunk_size_bytes",
            "Size of each HTTP chunk",
            buckets=chunk_size_buckets(chunk_bytes),
            registry=own,
        )
        self.first_byte = Histogram(
            "tablestream_stream_first_byte_seconds",
            "From the request reaching the app to the first chunk handed to the server",
            buckets=_TTFB_BUCKETS,
            registry=own,
        )
        self.duration = Histogram(
            "tablestream_stream_duration_seconds",
            "From the request reaching the app to the end of the stream, whatever its outcome",
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self.in_progress = Gauge(
            "tablestream_streams_in_progress",
            "Streams being sent now",
            ["table"],
            multiprocess_mode="livesum",
            registry=own,
        )
        self.scheduling_lag = Gauge(
            "tablestream_scheduling_lag_seconds",
            "How late a thread of the process wakes, smoothed over about a second: its wait for "
            "the interpreter; above TABLESTREAM_ADMIT_MAX_LAG_MS new streams are refused "
            "(overloaded)",
            multiprocess_mode="livemax",
            registry=own,
        )
        self.http_requests = counter(
            "tablestream_http_requests", "HTTP requests answered", ["method", "route", "status"]
        )
        self.http_duration = Histogram(
            "tablestream_http_request_duration_seconds",
            "HTTP request duration to the last body byte (streams included)",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self._rss = SampledResidentMemory() if self.multiprocess else None

    def refresh_process_gauges(self) -> None:
        """Multiprocess mode: write this process's RSS to its file (the sampler calls this)."""
        if self._rss is not None:
            self._rss.refresh()

    def start_sampler(self, interval: float = 1.0) -> None:
        """Multiprocess mode: a scrape reaches one process, so each keeps its own RSS fresh."""
        if self._rss is not None:
            self._rss.start(interval)

    content_type = CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        self.refresh_process_gauges()
        return generate_latest(self.registry)

    def declare_tables(self, tables: Iterable[str]) -> None:
        """Each table's stream counters and streams in flight exist from the start, at 0.

        Prometheus' ``increase()`` and ``rate()`` take a series' first sample as its start: the
        rows of a table's first stream on an instance, sent before the scrape that first showed
        the table, would never be counted (and an idle instance would have no line at all).
        """
        for table in tables:
            for counter in (self.chunks, self.bytes, self.uncompressed_bytes, self.rows):
                counter.labels(table)
            self.in_progress.labels(table)  # and each instance has a line in per-instance panels

    def stream_observer(self, table: str, started: float) -> StreamObserver:
        return StreamMetrics(self, table, started)
