"""SQLite, the embedded default: every table and view of one database file is served.

Each stream opens its own read-only connection (``mode=ro``), reads through a cursor with
``fetchmany`` so at most one batch is in memory, and closes the connection when the stream
ends for any reason. Table names come only from the file's own catalogue, read at start-up,
and are quoted as identifiers; nothing from a URL is ever put into SQL text.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from .base import RowStream, SourceError, Table
from .cursor import CursorRowStream

__all__ = ["SQLiteTable", "quote_identifier", "sqlite_tables"]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open SQLite database {str(path)!r}: {exc}") from exc
    return conn


class _SQLiteStream(CursorRowStream):
    def __init__(self, conn: sqlite3.Connection, sql: str, params: tuple, fetch_rows: int):
        self._conn: sqlite3.Connection | None = conn
        self._cursor = conn.execute(sql, params)
        self.columns = [d[0] for d in self._cursor.description]
        self._fetchmany = self._cursor.fetchmany
        self._fetch_rows = fetch_rows
        self.rows_read = 0

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._cursor.close()
            conn.close()


class SQLiteTable(Table):
    kind = "sqlite"

    def __init__(self, path: Path, name: str, fetch_rows: int = 2000) -> None:
        self.name = name
        self.path = path
        self._fetch_rows = fetch_rows
        self._columns: list[str] | None = None

    def columns(self) -> list[str]:
        if self._columns is None:
            with closing(connect_readonly(self.path)) as conn:
                info = conn.execute(f"PRAGMA table_info({quote_identifier(self.name)})")
                self._columns = [r[1] for r in info.fetchall()]
        return list(self._columns)

    def row_count(self) -> int | None:
        with closing(connect_readonly(self.path)) as conn:
            return conn.execute(f"SELECT count(*) FROM {quote_identifier(self.name)}").fetchone()[0]

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        conn = connect_readonly(self.path)
        try:
            sql = f"SELECT * FROM {quote_identifier(self.name)} LIMIT ? OFFSET ?"
            return _SQLiteStream(
                conn, sql, (-1 if limit is None else limit, offset), self._fetch_rows
            )
        except sqlite3.Error as exc:
            conn.close()
            raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc

    def check(self) -> None:
        with closing(connect_readonly(self.path)) as conn:
            try:
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise SourceError(f"SQLite database {str(self.path)!r} unreadable: {exc}") from exc


def sqlite_tables(path: str, fetch_rows: int) -> list[SQLiteTable]:
    """The tables and views of the database at ``path``; SourceError if it is not one."""
    file = Path(path)
    if not file.is_file():
        raise SourceError(
            f"TABLESTREAM_DB={path!r} does not exist; create it with "
            f"`tablestream demo-db {path}` or set TABLESTREAM_DB= (empty) to serve no SQLite tables"
        )
    try:
        with closing(connect_readonly(file)) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"TABLESTREAM_DB={path!r} is not a SQLite database: {exc}") from exc
    return [SQLiteTable(file, name, fetch_rows) for name in names]
