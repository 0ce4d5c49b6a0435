"""One SQLite stream: a read-only snapshot of the file, read a fetch at a time, then closed.

Each stream opens its own read-only connection (``mode=ro``) and reads one snapshot: a read
transaction (``BEGIN``) held until the stream closes, through a cursor with ``fetchmany`` so at
most one batch is in memory. After every fetch the file is checked (``sqlitefile.FileWatch``):
rows from a file rewritten under the stream are never handed on, the stream fails instead.

A TEXT value that is not valid UTF-8 is shown with U+FFFD replacement characters and the stream
goes on. The fast path keeps sqlite3's C decoder; the first undecodable cell costs one
re-run of the query in the same transaction (same snapshot, ``OFFSET`` = rows already fetched,
because the failed ``fetchmany`` dropped the rows it had read), and the rest of the stream
decodes with ``errors="replace"``.

The SQL comes ready from the table (``sqlite.py``), with ``?`` placeholders for every value;
the columns declared a date/time type (``sqlitetypes.py``) are given, so a stream's kinds are
decided once, never per cell.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from .base import SourceError, unique_columns
from .cursor import CursorRowStream
from .deadline import QueryTimeout, SQLiteDeadline
from .search import BadSearch, is_search_error
from .sqlitefile import FileWatch

__all__ = ["REPLACING_TEXT", "SQLiteStream", "connect_readonly", "open_snapshot"]

REPLACING_TEXT = functools.partial(str, encoding="utf-8", errors="replace")
"""sqlite3 text_factory that shows undecodable bytes as U+FFFD instead of failing the row."""
_UNDECODABLE = "Could not decode to UTF-8"
_OPEN_ATTEMPTS = 3
_LIMIT_OFFSET = " LIMIT ? OFFSET ?"


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database at ``path``, transactions left to the caller;
    SourceError naming the file when it cannot be opened."""
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            isolation_level=None,  # transactions are explicit: one BEGIN per stream
        )
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open SQLite database {str(path)!r}: {exc}") from exc
    return conn


class SQLiteStream(CursorRowStream):
    """The rows of one query over one read snapshot; ``open_snapshot`` makes it."""

    def __init__(
        self,
        table: str,
        conn: sqlite3.Connection,
        watch: FileWatch,
        sql: str,
        limit: int | None,
        offset: int,
        fetch_rows: int,
        params: Sequence[Any] = (),
        datetimes: Collection[str] = (),
        time_limit: float = 0.0,
    ):
        self._table = table
        self._conn: sqlite3.Connection | None = conn
        self._watch = watch
        self._sql, self._limit, self._offset = sql, limit, offset
        self._query_params = tuple(params)  # the WHERE's, before LIMIT and OFFSET
        self._fetched = 0
        # execute() steps to the first row: the sort and the OFFSET's skipping happen here.
        deadline = SQLiteDeadline(conn, time_limit).start()
        try:
            self._cursor = self._execute()
        except sqlite3.OperationalError as exc:
            if deadline.expired(exc):
                raise QueryTimeout(table, time_limit) from exc
            raise
        finally:
            deadline.stop()  # rows flow: no limit from here
        self.columns = unique_columns([d[0] for d in self._cursor.description])
        # SQLite's types are its values' own; a date/time column's text is a timestamp's.
        self.kinds = ["sqlite:timestamp" if c in datetimes else "value" for c in self.columns]
        self._fetchmany = self._fetch
        self._fetch_rows = fetch_rows
        self.rows_read = 0

    def _execute(self) -> sqlite3.Cursor:
        assert self._conn is not None
        if self._limit is None and self._offset == 0:
            # No LIMIT clause at all when none is asked: with one (even LIMIT -1) SQLite sorts
            # an ORDER BY with its top-N sorter, in memory and ~4x slower on 1M rows (measured).
            return self._conn.execute(self._sql, self._query_params)
        return self._conn.execute(self._sql + _LIMIT_OFFSET, self._params())

    def _params(self) -> tuple[Any, ...]:
        limit = -1 if self._limit is None else self._limit - self._fetched
        return (*self._query_params, limit, self._offset + self._fetched)

    def _fetch(self, size: int) -> Sequence[Sequence[Any]]:
        try:
            try:
                rows = self._cursor.fetchmany(size)
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith(_UNDECODABLE) or self._replacing():
                    raise
                self._decode_with_replacement()
                rows = self._cursor.fetchmany(size)
        except sqlite3.Error as exc:
            raise SourceError(
                f"table {self._table!r} failed after {self._fetched} rows: "
                f"{self._watch.changed() or exc}"
            ) from exc
        if reason := self._watch.changed():
            raise SourceError(
                f"table {self._table!r}: the database file changed under the stream after "
                f"{self._fetched} rows: {reason}; the {len(rows)} rows just read are dropped"
            )
        self._fetched += len(rows)
        return rows

    def _replacing(self) -> bool:
        return self._conn is not None and self._conn.text_factory is REPLACING_TEXT

    def _decode_with_replacement(self) -> None:
        """Read on from the first row not handed out, decoding text with replacement."""
        assert self._conn is not None
        self._conn.text_factory = REPLACING_TEXT
        self._cursor.close()
        self._cursor = self._conn.execute(self._sql + _LIMIT_OFFSET, self._params())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                self._cursor.close()
                conn.close()  # ends the read transaction
            finally:
                self._watch.close()


def open_snapshot(
    path: Path,
    table: str,
    sql: str,
    params: Sequence[Any],
    limit: int | None,
    offset: int,
    *,
    fetch_rows: int,
    datetimes: Collection[str],
    time_limit: float,
    cache_kib: int,
) -> SQLiteStream:
    """A stream of ``sql`` (``params`` for its placeholders) over one snapshot of the file at
    ``path``, ``limit`` rows after ``offset``; errors name ``table``.

    ``cache_kib`` bounds the page cache (0: SQLite's default); ``time_limit``: seconds to the
    first row (0: no limit), past which QueryTimeout; BadSearch for a search SQLite refuses.
    """
    # The file may be replaced between our descriptor, SQLite's, and the lock: try again.
    for _ in range(_OPEN_ATTEMPTS):
        try:
            watch = FileWatch(path)
        except OSError as exc:
            raise SourceError(f"cannot open SQLite database {str(path)!r}: {exc}") from exc
        try:
            conn = connect_readonly(path)
        except SourceError:
            watch.close()
            raise
        try:
            if cache_kib:
                conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
            conn.execute("BEGIN")
            watch.begin()
            stream = SQLiteStream(
                table,
                conn,
                watch,
                sql,
                limit,
                offset,
                fetch_rows,
                params,
                datetimes,
                time_limit,
            )  # the first step takes the shared lock: the snapshot starts here
            if watch.is_wal:
                watch.set_wal_floor(conn.execute("PRAGMA page_count").fetchone()[0])
        except (sqlite3.Error, QueryTimeout) as exc:
            conn.close()
            watch.close()
            if isinstance(exc, QueryTimeout):
                raise
            if is_search_error(exc, sql):
                raise BadSearch(str(exc)) from exc
            raise SourceError(f"cannot read table {table!r}: {exc}") from exc
        if watch.changed() is None and watch.is_the_path():
            return stream
        stream.close()
    raise SourceError(
        f"cannot read table {table!r}: the database file kept changing while it was opened"
    )
