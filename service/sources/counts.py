"""Row counts for the index page and table descriptions: one count per table at a time, reused.

``/`` shows every table's row count and ``/tables/<name>.json`` its own; both run outside the
stream slots, on a worker thread. A count reads a whole table (``SELECT count(*)``), and a view
can cost anything (a join counted row by row), so a few clients reloading the index could keep
every worker thread counting while ``/healthz`` waited behind them. Here a table is counted at
most once per ``COUNT_CACHE_SECONDS``; while one count is under way, other requests do not wait
for it: they get the last count known (or None, "unknown", shown as "—"). A source may also
give up on a count it cannot finish quickly and say None: SQLite's stops at ``count_seconds``,
``COUNT_SECONDS`` or the query time limit (``TABLESTREAM_QUERY_TIME_LIMIT_MS``) if shorter,
because an operator who bounds every query at 50 ms means counts too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .base import Table

__all__ = ["COUNT_CACHE_SECONDS", "COUNT_SECONDS", "RowCounts", "count_seconds"]

COUNT_CACHE_SECONDS = 10.0
"""How long a table's row count is reused before it is counted again."""
COUNT_SECONDS = 0.5
"""How long a source may spend on one count before it gives up and says None."""


def count_seconds(time_limit: float) -> float:
    """The bound of one count: ``COUNT_SECONDS``, or the query time limit when that is shorter
    (``time_limit`` of 0 or less: no query limit)."""
    return min(COUNT_SECONDS, time_limit) if time_limit > 0 else COUNT_SECONDS


class RowCounts:
    """Each table's last row count, refreshed by at most one request at a time."""

    def __init__(
        self, ttl: float = COUNT_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._clock = ttl, clock
        self._known: dict[str, tuple[float, int | None]] = {}
        self._counting: set[str] = set()
        self._lock = threading.Lock()

    def of(self, table: Table) -> int | None:
        """``table``'s row count, at most ``ttl`` seconds old; None when unknown.

        Raises what ``table.row_count()`` raises (SourceError) to the request that counted.
        """
        with self._lock:
            known = self._known.get(table.name)
            if known is not None and self._clock() - known[0] < self._ttl:
                return known[1]
            if table.name in self._counting:  # another request is counting: do not wait
                return known[1] if known is not None else None
            self._counting.add(table.name)
        try:
            count = table.row_count()
            with self._lock:
                self._known[table.name] = (self._clock(), count)
            return count
        finally:
            with self._lock:
                self._counting.discard(table.name)
