"""A query's time to its first row, bounded: one way to interrupt SQLite, one to cut PostgreSQL.

A database sorts before it can hand out the first row of ``ORDER BY <unindexed column>``, and
skips every row of a large ``OFFSET`` first: on the 1M-row demo ``orders`` that is ~1 s of a
busy core and a held stream slot, ~11 s at 10M, and nothing on the client's side can shorten
it. Here the wait for the first row is bounded (``TABLESTREAM_QUERY_TIME_LIMIT_MS``); once rows
flow there is no limit, because a stream of millions of rows may rightly take minutes.

- SQLite: a progress handler, called every few thousand virtual-machine steps, answers "stop"
  past the deadline; SQLite then fails the statement with "interrupted". Counts
  (``sqlite.py`` ``row_count``) and facets use the same handler.
- PostgreSQL: ``statement_timeout`` set for the transaction's opening statements only
  (``set_config(..., true)``), then put back, so the fetches that follow are not bounded.
  A CSV stream's ``COPY`` cannot be bounded that way (the timeout would cover the whole COPY,
  and nothing can be sent on the connection until it ends): ``pgcopy`` waits for its first row
  itself and cancels it past the deadline.

Past the limit a source raises ``QueryTimeout``; the view turns it into a 503 that says what to
ask instead, and counts it (``tablestream_query_timeouts_total``).
"""

from __future__ import annotations

import sqlite3
import time

from .base import SourceError

__all__ = ["TIMEOUT_ADVICE", "QueryTimeout", "SQLiteDeadline"]

_CHECK_EVERY = 10_000
"""SQLite virtual-machine steps between checks of the clock: ~0.1-1 ms of work each."""

TIMEOUT_ADVICE = (
    "add a filter that narrows the rows, sort on an indexed column (or not at all), or page "
    "with the next-page link (_after=) instead of a large offset="
)


class QueryTimeout(SourceError):
    """The source's query did not reach its first row within the time limit."""

    def __init__(self, table: str, seconds: float) -> None:
        super().__init__(
            f"the query on table {table!r} found no first row within {seconds * 1000:.0f} ms"
        )
        self.table = table
        self.seconds = seconds


class SQLiteDeadline:
    """Interrupts ``conn``'s statements once ``seconds`` have passed since ``start()``.

    ``seconds`` of 0 or less: no limit. ``stop()`` removes the handler (rows flow freely)."""

    def __init__(self, conn: sqlite3.Connection, seconds: float) -> None:
        self._conn = conn
        self.seconds = seconds
        self._deadline = 0.0

    def start(self) -> SQLiteDeadline:
        if self.seconds > 0:
            self._deadline = time.monotonic() + self.seconds
            deadline = self._deadline
            self._conn.set_progress_handler(lambda: time.monotonic() > deadline, _CHECK_EVERY)
        return self

    def stop(self) -> None:
        if self.seconds > 0:
            self._conn.set_progress_handler(None, 0)

    def expired(self, exc: BaseException) -> bool:
        """Whether ``exc`` is SQLite's "interrupted" caused by this deadline."""
        return (
            self.seconds > 0
            and isinstance(exc, sqlite3.OperationalError)
            and "interrupted" in str(exc)
            and time.monotonic() > self._deadline
        )
