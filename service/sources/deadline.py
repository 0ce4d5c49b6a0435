"""A query's time to its first row, bounded: one way to interrupt SQLite, one to cut PostgreSQL.

A database sorts before it can hand out the first row of ``ORDER BY <unindexed column>``, and
skips every row of a large ``OFFSET`` first: on the 1M-row demo ``orders`` that is ~1 s of a
busy core and a held stream slot, ~11 s at 10M, and nothing on the client's side can shorten
it. Here the wait for the first row is bounded (``TABLESTREAM_QUERY_TIME_LIMIT_MS``); once rows
flow there is no limit, because a stream of millions of rows may rightly take minutes.

- SQLite: one thread of the process (``_Interrupter``) calls ``conn.interrupt()`` at each
  armed deadline; SQLite then fails the statement with "interrupted". Counts (``sqlite.py``
  ``row_count``) and facets use the same deadline. Not a progress handler: that is Python
  code SQLite calls every N steps, and each call waits for the GIL, which a stream rendering
  CSV holds: a facet over 10M rows beside one got 97-161 clock checks in its 200 ms (2,723
  alone), ran at half speed and was stopped up to 72 ms late (bench/big_facets.py). With no
  handler the query runs with the GIL released, and only the one ``interrupt()`` waits for it.
- PostgreSQL: ``statement_timeout`` set for the transaction's opening statements only
  (``set_config(..., true)``), then put back, so the fetches that follow are not bounded.
  A CSV stream's ``COPY`` cannot be bounded that way (the timeout would cover the whole COPY,
  and nothing can be sent on the connection until it ends): ``pgcopy`` waits for its first row
  itself and cancels it past the deadline.

Past the limit a source raises ``QueryTimeout``; the view turns it into a 503 that says what to
ask instead, and counts it (``tablestream_query_timeouts_total``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import sqlite3
import threading
import time

from .base import SourceError

__all__ = ["TIMEOUT_ADVICE", "QueryTimeout", "SQLiteDeadline"]

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


class _Interrupter:
    """One daemon thread for the process that interrupts SQLite connections at their deadlines.

    A deadline is armed with its connection and disarmed when the statement no longer needs it;
    the thread interrupts only armed ones, under the same lock, so once ``disarm`` returns no
    interrupt can reach a statement started after it. Started on first use."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._queue: list[tuple[float, int, _Armed]] = []  # a heap by deadline
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: sqlite3.Connection, deadline: float) -> _Armed:
        armed = _Armed(conn, deadline)
        with self._wake:
            heapq.heappush(self._queue, (deadline, next(self._count), armed))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tablestream-sqlite-deadlines", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return armed

    def disarm(self, armed: _Armed) -> None:
        with self._wake:
            armed.conn = None  # left in the heap; dropped when its time comes

    def _run(self) -> None:
        with self._wake:
            while True:
                if not self._queue:
                    self._wake.wait()
                    continue
                deadline, _, armed = self._queue[0]
                wait = deadline - time.monotonic()
                if armed.conn is not None and wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._queue)
                if armed.conn is not None:
                    armed.fired = True
                    with contextlib.suppress(sqlite3.Error):  # closed meanwhile: nothing runs
                        armed.conn.interrupt()
                    armed.conn = None


class _Armed:
    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: sqlite3.Connection, deadline: float) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.deadline = deadline
        self.fired = False


_INTERRUPTER = _Interrupter()


class SQLiteDeadline:
    """Interrupts ``conn``'s statements once ``seconds`` have passed since ``start()``.

    ``seconds`` of 0 or less: no limit. ``stop()`` disarms it (rows flow freely); call it
    before the connection runs anything else or is closed."""

    def __init__(self, conn: sqlite3.Connection, seconds: float) -> None:
        self._conn = conn
        self.seconds = seconds
        self._armed: _Armed | None = None

    def start(self) -> SQLiteDeadline:
        if self.seconds > 0:
            self._armed = _INTERRUPTER.arm(self._conn, time.monotonic() + self.seconds)
        return self

    def stop(self) -> None:
        if self._armed is not None:
            _INTERRUPTER.disarm(self._armed)

    def expired(self, exc: BaseException) -> bool:
        """Whether ``exc`` is SQLite's "interrupted" caused by this deadline."""
        return (
            self._armed is not None
            and self._armed.fired
            and isinstance(exc, sqlite3.OperationalError)
            and "interrupted" in str(exc)
        )
