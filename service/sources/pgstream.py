"""One stream of a PostgreSQL table, in its own read-only transaction on a pooled connection.

Rows come through a server-side cursor (``DECLARE`` when the stream opens), fetched one
``FETCH`` ahead (``pgfetch``), the cells as text the server writes (``pgtext``); CSV instead
through ``COPY`` of the same query, lines written by the server (``pgcopy``), started as the
stream opens when it is opened for CSV (``csv``): the query runs once, and its time to the first
row is bounded there as the cursor's is (``deadline.py``). However the stream
ends, the connection goes back to the pool: rolled back, or closed when a COPY was left unread
or the server went away (the pool then replaces it).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from .base import BATCH_ROWS, BadValue, unique_columns
from .cursor import CursorRowStream
from .pgcopy import CopyOut, copy_statement
from .pgfetch import FetchAhead
from .pgplan import FIRST_ROWS, WALK_THEN_SORT, plan_search, sort_matches
from .pgtext import TEXT_OIDS, copy_select, text_select

if TYPE_CHECKING:
    from ..query.sql import KeyWalk

__all__ = ["PostgresStream"]

log = logging.getLogger("tablestream.sources.postgres")
_cursor_ids = itertools.count(1)
# What the server's text of a type is, for typed_batches (base.KINDS); psycopg's values for the
# types the server does not write (floats, time, interval, json, arrays, ...).
_TEXT_KINDS = {
    **dict.fromkeys((20, 21, 23, 26), "integer"),
    1700: "numeric",
    16: "boolean",
    1114: "timestamp",
    1184: "timestamp",
    1082: "date",
    17: "bytes",
}


class PostgresStream(CursorRowStream):
    """One stream of a PostgreSQL table: a server-side cursor, or for CSV a COPY."""

    def __init__(
        self,
        pool: ConnectionPool,
        conn: psycopg.Connection,
        table: sql.Identifier,
        params: tuple,
        fetch_rows: int,
        chosen: Sequence[str] | None = None,
        tail: str = "",
        typed: bool = False,
        request_values: bool = False,
        time_limit: float = 0.0,
        csv: tuple[str, bool] | None = None,
        search: tuple[KeyWalk | None, int] | None = None,
    ) -> None:
        self._pool = pool
        # A search (its KeyWalk, if in key order, and the rows wanted first, offset included)
        # is planned per query (pgplan). CSV by COPY would run it planned for all its rows: a
        # search through a GIN index then reads and sorts every match before its first line
        # (150-1,000 ms on the 1M-row demo, against 20-50 ms from the cursor).
        self._search = search
        self._rows = fetch_rows
        self.search_plan: str | None = None  # pgplan's choice, for a search
        self._copy_allowed = search is None
        self._conn: psycopg.Connection | None = conn
        if search is not None:  # one snapshot for a second cursor too (WALK_THEN_SORT)
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # The columns' types, in the stream's own transaction, decide what the server writes as
        # text (pgtext); the cursor then reads that transaction's snapshot.
        described = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table)).description
        names = [d.name for d in described or []]
        types = [d.type_code for d in described or []]
        if chosen is not None:  # a query's columns, in its order (names checked by the query)
            picked = [names.index(name) for name in chosen]
            names, types = [names[i] for i in picked], [types[i] for i in picked]
        iso = _iso_dates(conn)
        if typed:  # NULL kept; typed_batches() hands the cells as they come
            select, _ = text_select(names, types, keep_null=True, iso_dates=iso)
        else:
            select, self._rows_are_text = text_select(names, types, iso_dates=iso)
        self.kinds = [
            _TEXT_KINDS.get(t, "text") if typed and t in TEXT_OIDS else "value" for t in types
        ]
        self._from = (table, tail, params)
        self._names, self._types = names, types
        self._copy: CopyOut | None = None
        self._copied_as = csv
        self._cursor: psycopg.ServerCursor | None = None
        self._first: list | None = None
        # Opened for CSV: the COPY starts now, so its time to the first row is bounded here,
        # before the response, and the query runs once (not a FETCH under the limit, then COPY).
        statement = self._copy_statement(*csv) if csv is not None and search is None else None
        try:
            if statement is not None:
                self._copy = CopyOut(conn, statement, first_row_within=time_limit)
            else:
                self._cursor = conn.cursor(name=f"tablestream_{next(_cursor_ids)}")
                first = min(fetch_rows, FIRST_ROWS) if search is not None else fetch_rows
                self._first = self._declare(conn, self._query(select), first, time_limit)
        except BaseException as exc:
            # A backend that dies right here (killed, restarted) would leave the named cursor
            # to the garbage collector, which warns; the caller gives the connection back.
            if self._cursor is not None:
                self._cursor.close()
            if request_values and isinstance(exc, psycopg.DataError):
                # SQLSTATE class 22 where the table itself just answered (the columns above):
                # a value of the request that its column's type refuses (a uuid, an enum, ...
                # compared as text), so the caller's mistake, a 400, not the table's 503.
                raise BadValue(str(exc).split("\n", 1)[0]) from exc
            raise
        self.columns = unique_columns(names)
        self._ahead: FetchAhead | None = None
        if self._cursor is None:
            self._fetchmany = self._copying
        else:
            self._ahead = FetchAhead(conn, self._cursor)
            self._fetchmany = self._ahead.fetchmany if self._first is None else self._after_first
        self._fetch_rows = fetch_rows
        self.rows_read = 0

    def _declare(
        self, conn: psycopg.Connection, query: sql.SQL, size: int, seconds: float
    ) -> list | None:
        """DECLARE the cursor, a search's plan chosen first (``pgplan``), and with a time limit
        (or for a search) its first ``FETCH`` of ``size`` rows (where the server sorts and skips
        the offset), all under ``statement_timeout`` (``deadline.py``), which is put back for
        the fetches that follow. Raises ``QueryCanceled`` past it; None when nothing is fetched
        yet."""
        assert self._cursor is not None
        _, _, params = self._from
        started = time.monotonic()
        before = _statement_timeout(conn, seconds) if seconds > 0 else None
        if self._search is not None:
            walk, first_rows = self._search
            self.search_plan = plan_search(conn, self._from[0], walk, first_rows, self._rows)
        elif before is None:
            self._cursor.execute(query, params)
            return None
        self._cursor.execute(query, params)
        if before is not None and self._search is not None:  # what the probe left of the limit
            _statement_timeout(conn, seconds - (time.monotonic() - started))
        rows = self._cursor.fetchmany(size)
        if before is not None:
            conn.execute("SELECT set_config(%s, %s, true)", ("statement_timeout", before))
        if self.search_plan == WALK_THEN_SORT and len(rows) == size:
            self._sort_the_rest(conn, query, size)
        return rows

    def _sort_the_rest(self, conn: psycopg.Connection, query: sql.SQL, done: int) -> None:
        """Replace the walk that found the first ``done`` rows by the same query sorted, past
        them: the transaction's one snapshot (REPEATABLE READ) and the key's total order make
        its rows exactly the walk's next ones. Its sort runs at its first FETCH, after the first
        byte."""
        assert self._cursor is not None
        *where, limit, offset = self._from[2]
        self._cursor.close()
        sort_matches(conn)
        self._cursor = conn.cursor(name=f"tablestream_{next(_cursor_ids)}")
        rest = None if limit is None else limit - done
        self._cursor.execute(query, (*where, rest, offset + done))

    def _copying(self, size: int) -> list:
        raise RuntimeError("this stream was opened for CSV: its rows come from csv_lines()")

    def _after_first(self, size: int) -> list:
        first, self._first = self._first, None
        assert self._ahead is not None
        return first if first is not None else self._ahead.fetchmany(size)

    def _query(self, select: sql.Composable) -> sql.SQL:
        assert self._conn is not None
        table, tail, _ = self._from
        # A "%" in a name would read as a placeholder: the names are doubled-% text here, as
        # they are in ``tail`` (the query's WHERE/ORDER BY, service/query/sql.py).
        names_sql = sql.SQL("SELECT {} FROM {}").format(select, table).as_string(self._conn)
        return sql.SQL(names_sql.replace("%", "%%") + tail + " LIMIT %s OFFSET %s")

    def csv_lines(self, marker: str, empty_is_null: bool) -> Iterator[str] | None:
        """The rows as CSV lines written by PostgreSQL (``pgcopy``), NULL written as
        ``marker`` and, with ``empty_is_null``, the empty string too; None when this table's
        CSV is left to ``stream/csvnulls.py`` (a column whose text the server does not write,
        one column only) or rows were already read. A stream opened with ``csv`` copies
        already, and only in that spelling."""
        if self._copy is not None:
            if (marker, empty_is_null) != self._copied_as:
                raise ValueError(f"opened for CSV as {self._copied_as}, asked for {marker!r}")
            return self._copy_lines(self._copy)
        conn = self._conn
        if conn is None or self.rows_read or not self._copy_allowed:
            return None
        statement = self._copy_statement(marker, empty_is_null)
        if statement is None:
            return None
        assert self._cursor is not None
        self._cursor.close()  # declared, never fetched from: the COPY runs the query instead
        self._copy = CopyOut(conn, statement)
        return self._copy_lines(self._copy)

    def _copy_statement(self, marker: str, empty_is_null: bool) -> bytes | None:
        """The COPY of this stream's query, or None where csvnulls writes the CSV."""
        conn = self._conn
        assert conn is not None
        _, _, params = self._from
        if len(self._names) < 2:
            return None
        select, all_text = copy_select(self._names, self._types, empty_is_null, _iso_dates(conn))
        if not all_text:
            return None
        query = psycopg.ClientCursor(conn).mogrify(self._query(select), params)
        return copy_statement(query, marker).as_bytes(conn)

    def _copy_lines(self, copy: CopyOut) -> Iterator[str]:
        for text, count in copy.batches(BATCH_ROWS * 2):
            self.rows_read += count
            yield text

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._copy is not None and not self._copy.done:
            # A COPY cannot be left half-read on a connection: it goes, the pool replaces it.
            conn.close()
        try:
            if self._ahead is not None:
                self._ahead.drain()
            if self._cursor is not None:  # on a dead connection this only marks it closed
                self._cursor.close()
            if not conn.closed:
                conn.rollback()
        except psycopg.Error as exc:  # the server went away: the pool discards the connection
            log.warning("PostgreSQL connection broken while closing a stream: %s", exc)
        finally:
            self._pool.putconn(conn)


def _statement_timeout(conn: psycopg.Connection, seconds: float) -> str:
    """Set this transaction's ``statement_timeout`` to ``seconds`` (1 ms at least); the setting
    it had before."""
    limit = f"{max(1, round(seconds * 1000))}ms"
    set_timeout = "SELECT current_setting('statement_timeout'), set_config(%s, %s, true)"
    (before, _) = conn.execute(set_timeout, ("statement_timeout", limit)).fetchone() or ("0", "")
    return before


def _iso_dates(conn: psycopg.Connection) -> bool:
    """Whether the session writes dates as ISO (``DateStyle``, which the server reports)."""
    return (conn.info.parameter_status("DateStyle") or "").startswith("ISO")
