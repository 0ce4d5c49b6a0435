"""SQLite, the embedded default: every table and view of one database file is served.

Each stream opens its own read-only connection (``mode=ro``) and reads one snapshot: a read
transaction (``BEGIN``) held until the stream closes, through a cursor with ``fetchmany`` so at
most one batch is in memory. After every fetch the file is checked (``sqlitefile.FileWatch``):
rows from a file rewritten under the stream are never handed on, the stream fails instead.

A TEXT value that is not valid UTF-8 is shown with U+FFFD replacement characters and the stream
goes on. The fast path keeps sqlite3's C decoder; the first undecodable cell costs one
re-run of the query in the same transaction (same snapshot, ``OFFSET`` = rows already fetched,
because the failed ``fetchmany`` dropped the rows it had read), and the rest of the stream
decodes with ``errors="replace"``.

A column declared a date/time type (``DATE``, ``DATETIME``, ``TIMESTAMP``: the first word of
its declared type, any case) is of kind ``sqlite:timestamp``: its cells are still the values
SQLite stores, and typed NDJSON writes text in SQLite's ``datetime()`` form with a ``T``, as
PostgreSQL's timestamps are written (``stream/ndjson.py``). Decided once per stream, from the
declared types read at the first open, never per cell.

Table names come only from the file's own catalogue, read at start-up, and are quoted as
identifiers; nothing from a URL is ever put into SQL text.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Collection, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from .base import BATCH_ROWS, RowStream, SourceError, Table, unique_columns
from .counts import COUNT_SECONDS
from .cursor import CursorRowStream
from .deadline import QueryTimeout, SQLiteDeadline
from .demo import DEMO_APPLICATION_ID
from .search import BadSearch, SearchIndex, index_tables, is_search_error, sqlite_search_index
from .sqlitefile import FileWatch, not_a_database

__all__ = ["SQLiteTable", "is_datetime_type", "quote_identifier", "sqlite_tables"]

REPLACING_TEXT = functools.partial(str, encoding="utf-8", errors="replace")
"""sqlite3 text_factory that shows undecodable bytes as U+FFFD instead of failing the row."""
_UNDECODABLE = "Could not decode to UTF-8"
_OPEN_ATTEMPTS = 3
_LIMIT_OFFSET = " LIMIT ? OFFSET ?"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect_readonly(path: Path) -> sqlite3.Connection:
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


class _SQLiteStream(CursorRowStream):
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


class SQLiteTable(Table):
    kind = "sqlite"
    natural_key_order = True  # SELECT * with no WHERE reads the table's b-tree in rowid order

    def __init__(
        self,
        path: Path,
        name: str,
        fetch_rows: int = BATCH_ROWS,
        demo: bool = False,
        cache_kib: int = 0,
        time_limit: float = 0.0,
    ) -> None:
        self.name = name
        self.time_limit = time_limit  # seconds to the first row (deadline.py); 0: none
        self.path = path
        self.demo = demo  # a table of the demo database (its application_id): demo templates
        self._fetch_rows = fetch_rows
        self._cache_kib = cache_kib  # 0: SQLite's default page cache
        self._columns: list[str] | None = None
        self._types: dict[str, str] | None = None
        self._info: list[Any] | None = None  # PRAGMA table_info, read once (_table_info)
        self._datetimes: frozenset[str] = frozenset()
        self._key: str | None = None
        self._search: SearchIndex | bool | None = False  # False: not looked for yet

    def _query(self, sql: str) -> list[Any]:
        """Run a short catalogue query; SourceError naming the table when it cannot be read."""
        with closing(connect_readonly(self.path)) as conn:
            conn.text_factory = REPLACING_TEXT
            try:
                return conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc

    def _table_info(self) -> list[Any]:
        """``PRAGMA table_info``, read once: every answer about the columns (names, types,
        details, key) comes from the same reading, so a file replaced with another schema
        cannot make them disagree (a described column with no type was a 500; a renamed
        hidden column would have been listed under its new name)."""
        if self._info is None:
            self._info = self._query(f"PRAGMA table_info({quote_identifier(self.name)})")
        return self._info

    def columns(self) -> list[str]:
        if self._columns is None:
            self._columns = unique_columns([r[1] for r in self._table_info()])
        return list(self._columns)

    def row_count(self) -> int | None:
        """``count(*)``, or None past ``COUNT_SECONDS`` (a huge table, a slow view)."""
        with closing(connect_readonly(self.path)) as conn:
            deadline = SQLiteDeadline(conn, COUNT_SECONDS).start()
            try:
                sql = f"SELECT count(*) FROM {quote_identifier(self.name)}"
                return conn.execute(sql).fetchone()[0]
            except sqlite3.Error as exc:
                if deadline.expired(exc):
                    return None  # given up, not broken
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc

    def column_types(self) -> dict[str, str]:
        if self._types is None:
            info = self._table_info()
            names = unique_columns([r[1] for r in info])
            self._types = {name: _affinity(r[2]) for name, r in zip(names, info, strict=True)}
            self._datetimes = frozenset(
                name for name, r in zip(names, info, strict=True) if is_datetime_type(r[2])
            )
            pks = [name for name, r in zip(names, info, strict=True) if r[5]]
            integer_pk = len(pks) == 1 and info[names.index(pks[0])][2].upper() == "INTEGER"
            self._key = pks[0] if integer_pk else None  # an alias of the rowid: ordered, unique
        return dict(self._types)

    def key_column(self) -> str | None:
        self.column_types()
        return self._key

    def column_details(self) -> list[dict[str, Any]]:
        info = self._table_info()
        names = unique_columns([r[1] for r in info])
        types = self.column_types()
        return [
            {
                "name": name,
                "type": types[name],
                "source_type": r[2] or None,
                # A view's columns say NOT NULL only when SQLite can tell; an INTEGER PRIMARY
                # KEY is the rowid, never NULL.
                "nullable": not (r[3] or name == self._key),
            }
            for name, r in zip(names, info, strict=True)
        ]

    @property
    def sql_name(self) -> tuple[str, ...]:
        """The table's name as SQL identifier parts, for qualified column names."""
        return (self.name,)

    def search_index(self) -> SearchIndex | None:
        """``<name>_fts``, an FTS5 table with this table as its content (``search.py``);
        looked for once."""
        if self._search is False:
            columns, key = self.columns(), self.key_column()
            with closing(connect_readonly(self.path)) as conn:
                try:
                    self._search = sqlite_search_index(conn, self.name, columns, key)
                except sqlite3.Error as exc:
                    raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
        return self._search  # type: ignore[return-value]

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        return self.open_where(None, "", (), limit, offset)

    def open_where(
        self,
        columns: Sequence[str] | None,
        tail: str,
        params: Sequence[Any],
        limit: int | None = None,
        offset: int = 0,
        typed: bool = False,
        csv: tuple[str, bool] | None = None,
        fast_start: bool = False,
        walk: object = None,
    ) -> RowStream:
        """Stream ``columns`` (all when None) with ``tail`` (`` WHERE … ORDER BY …`` with
        ``?`` placeholders for ``params``, from ``query/sql.py``), in one snapshot, ``limit``
        rows after ``offset``. ``typed``, ``csv``, ``fast_start`` and ``walk`` change nothing
        here (FTS5 hands a search's matches in key order):
        SQLite's cursor always has the values for ``typed_batches()``, is the only way rows
        come, and SQLite writes no CSV itself."""
        self.column_types()  # the declared types, read once: which columns are date/times
        # Qualified: a search joins the FTS5 table, whose columns have the same names.
        table = quote_identifier(self.name)
        shown = ", ".join(f"{table}.{quote_identifier(c)}" for c in columns or ()) or f"{table}.*"
        sql = f"SELECT {shown} FROM {table}{tail}"
        # The file may be replaced between our descriptor, SQLite's, and the lock: try again.
        for _ in range(_OPEN_ATTEMPTS):
            try:
                watch = FileWatch(self.path)
            except OSError as exc:
                raise SourceError(f"cannot open SQLite database {str(self.path)!r}: {exc}") from exc
            try:
                conn = connect_readonly(self.path)
            except SourceError:
                watch.close()
                raise
            try:
                if self._cache_kib:
                    conn.execute(f"PRAGMA cache_size = -{int(self._cache_kib)}")
                conn.execute("BEGIN")
                watch.begin()
                stream = _SQLiteStream(
                    self.name,
                    conn,
                    watch,
                    sql,
                    limit,
                    offset,
                    self._fetch_rows,
                    params,
                    self._datetimes,
                    self.time_limit,
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
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
            if watch.changed() is None and watch.is_the_path():
                return stream
            stream.close()
        raise SourceError(
            f"cannot read table {self.name!r}: the database file kept changing while it was opened"
        )

    def check(self) -> None:
        """Read the first row: a view over a dropped table fails here, not on a user's page."""
        self._query(f"SELECT * FROM {quote_identifier(self.name)} LIMIT 1")


_DATETIME_TYPES = {"DATE", "DATETIME", "TIMESTAMP"}
_FIRST_WORD = re.compile(r"\s*([A-Za-z_]+)")


def is_datetime_type(declared: str) -> bool:
    """Whether a column's declared type says it holds dates or times: its first word is
    ``DATE``, ``DATETIME`` or ``TIMESTAMP`` in any case (``datetime`` as Django and Rails
    declare it, ``TIMESTAMP(3)``, ``timestamp with time zone``); ``TEXT``, ``MYDATE`` or
    ``DATETIMEOFFSET`` are not. SQLite has no date type: the declared type is the only word
    a file gives on what its text means."""
    first = _FIRST_WORD.match(declared)
    return first is not None and first.group(1).upper() in _DATETIME_TYPES


def _affinity(declared: str) -> str:
    """SQLite's type affinity rules (https://sqlite.org/datatype3.html §3.1) as query types."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")) or not upper:
        return "text"  # no declared type is BLOB affinity: compared as given, i.e. as text
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "text"  # NUMERIC affinity (DATE, DECIMAL, ...): SQLite converts the text itself


def sqlite_tables(
    path: str, fetch_rows: int, cache_kib: int = 0, time_limit: float = 0.0
) -> list[SQLiteTable]:
    """The tables and views of the database at ``path``; SourceError if it is not one.

    ``cache_kib`` bounds each stream's page cache (0: SQLite's default of 2000 KiB);
    ``time_limit``: seconds a stream may take to its first row (0: no limit).
    """
    file = Path(path)
    if not file.is_file():
        raise SourceError(
            f"TABLESTREAM_DB={path!r} does not exist; create it with "
            f"`tablestream demo-db {path}` or set TABLESTREAM_DB= (empty) to serve no SQLite tables"
        )
    if problem := not_a_database(file):
        raise SourceError(
            f"TABLESTREAM_DB={path!r} {problem}; expected a SQLite database file "
            f"(`tablestream demo-db {path}` makes one)"
        )
    try:
        with closing(connect_readonly(file)) as conn:
            demo = conn.execute("PRAGMA application_id").fetchone()[0] == DEMO_APPLICATION_ID
            entries = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"TABLESTREAM_DB={path!r} is not a SQLite database: {exc}") from exc
    # Full-text indexes are how a table is searched, not tables to serve (search.py).
    hidden = index_tables(entries)
    return [
        SQLiteTable(file, name, fetch_rows, demo, cache_kib, time_limit)
        for name, _ in entries
        if name not in hidden
    ]
