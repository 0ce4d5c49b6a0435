"""One stream's metric updates, told once per chunk by the response body, never per row.

The ``StreamObserver`` that ``Metrics.stream_observer`` hands to ``stream/body.py``: it binds
the table's labelled series once, at the start, so a chunk costs a few increments and no label
lookups, and counts rows by the difference since the last chunk. The metric objects are
declared in ``metrics.py``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """One stream's metric updates: a few counter increments per chunk, never per row."""

    def __init__(self, metrics: Metrics, table: str, started: float) -> None:
        self._started = started
        self._first = True
        self._rows_counted = 0
        self._chunks = metrics.chunks.labels(table)
        self._bytes = metrics.bytes.labels(table)
        self._uncompressed = metrics.uncompressed_bytes.labels(table)
        self._rows = metrics.rows.labels(table)
        self._streams = metrics.streams
        self._table = table
        self._chunk_size = metrics.chunk_size
        self._first_byte = metrics.first_byte
        self._duration = metrics.duration
        self._in_progress = metrics.in_progress.labels(table)
        self._in_progress.inc()

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        if self._first:
            self._first = False
            self._first_byte.observe(time.perf_counter() - self._started)
        self._chunks.inc()
        self._bytes.inc(nbytes)
        self._uncompressed.inc(uncompressed)
        self._chunk_size.observe(nbytes)
        if rows_read > self._rows_counted:
            self._rows.inc(rows_read - self._rows_counted)
            self._rows_counted = rows_read

    def finished(self, outcome: str, rows_read: int) -> None:
        if rows_read > self._rows_counted:
            self._rows.inc(rows_read - self._rows_counted)
            self._rows_counted = rows_read
        self._streams.labels(self._table, outcome).inc()
        self._duration.observe(time.perf_counter() - self._started)
        self._in_progress.dec()
