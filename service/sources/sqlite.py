"""SQLite, the embedded default: every table and view of one database file is served.

A table answers from the file's catalogue: ``PRAGMA table_info``, read once, gives its columns,
their types, details and key; a count and its full-text index are asked for when needed. Each
``open_where`` is one stream over one read snapshot (``sqlitestream.py``, with the checks of
``sqlitefile.py`` that catch a file rewritten under it). ``sqlite_tables`` finds the tables at
start-up. What a declared type means (a query's type, a date/time column) is
``sqlitetypes.py``; a table's FTS5 index is ``search.py``.

Table names come only from the file's own catalogue, read at start-up, and are quoted as
identifiers; nothing from a URL is ever put into SQL text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from .base import BATCH_ROWS, RowStream, SourceError, Table, unique_columns
from .counts import count_seconds
from .deadline import SQLiteDeadline
from .demo import DEMO_APPLICATION_ID
from .search import SearchIndex, index_tables, sqlite_search_index
from .sqlitefile import not_a_database
from .sqlitestream import REPLACING_TEXT, connect_readonly, open_snapshot
from .sqlitetypes import affinity, is_datetime_type

__all__ = ["SQLiteTable", "is_datetime_type", "quote_identifier", "sqlite_tables"]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
        """``count(*)``, or None past ``count_seconds`` (a huge table, a slow view)."""
        with closing(connect_readonly(self.path)) as conn:
            deadline = SQLiteDeadline(conn, count_seconds(self.time_limit)).start()
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
            self._types = {name: affinity(r[2]) for name, r in zip(names, info, strict=True)}
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
        return open_snapshot(
            self.path,
            self.name,
            sql,
            params,
            limit,
            offset,
            fetch_rows=self._fetch_rows,
            datetimes=self._datetimes,
            time_limit=self.time_limit,
            cache_kib=self._cache_kib,
        )

    def check(self) -> None:
        """Read the first row: a view over a dropped table fails here, not on a user's page."""
        self._query(f"SELECT * FROM {quote_identifier(self.name)} LIMIT 1")


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
