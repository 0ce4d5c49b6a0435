"""PostgreSQL tables, read through a server-side cursor so the result never lands in our memory
(CSV through ``COPY``: ``pgstream.py``).

psycopg's ordinary cursor pulls the whole result into the client on ``execute``; a named
(server-side) cursor keeps it on the server and hands out ``fetchmany`` batches. Each stream
borrows one connection from a bounded pool (a burst of streams waits ``pool_timeout`` and is
then refused with 503, instead of opening unbounded connections), runs in a read-only
transaction, and gives the connection back — rolled back, or discarded by the pool when broken
— however the stream ends.

A stream reads one snapshot: PostgreSQL fixes a cursor's snapshot when the cursor is opened
(``DECLARE``), whatever the isolation level, so rows committed by others while the stream runs
are never mixed in; each stream's transaction runs only that one statement.

Tables come only from configuration. Identifiers are quoted with ``sql.Identifier`` and
``limit``/``offset`` are bound parameters, so nothing from a URL becomes SQL text. Explicitly
named tables are served even when the database is down at start-up (requests get 503 and
/readyz says why); ``schema.*`` needs the database at start to list the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import BadValue, RowStream, SourceBusy, SourceError, Table, unique_columns
from .deadline import QueryTimeout
from .pgplan import FIRST_ROWS
from .pgstream import PostgresStream
from .search import PG_GIN_INDEXES, SearchIndex, pg_search_index

if TYPE_CHECKING:
    from ..query.sql import KeyWalk

__all__ = ["PostgresSource", "PostgresTable"]

APPLICATION_NAME = "tablestream"
# Type oids (pg_type) as the query compares them; anything else compares as text.
_QUERY_TYPES = {
    **dict.fromkeys((20, 21, 23, 26), "integer"),
    700: "real",
    701: "real",
    1700: "numeric",
    16: "boolean",
    1114: "timestamp",
    1184: "timestamp",
    1082: "date",
}


class PostgresTable(Table):
    kind = "postgres"

    def __init__(self, source: PostgresSource, schema: str, table: str) -> None:
        self.name = table
        self.schema = schema
        self.table = table
        self._source = source
        self._columns: list[str] | None = None
        self._types: dict[str, str] | None = None
        self._key: str | None = None
        self._search: SearchIndex | bool | None = False  # False: not looked for yet

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    def columns(self) -> list[str]:
        if self._columns is None:
            query = sql.SQL("SELECT * FROM {} LIMIT 0").format(self.identifier)
            try:
                with self._source.connection() as conn, conn.cursor() as cur:
                    cur.execute(query)
                    self._columns = unique_columns([d.name for d in cur.description or []])
            except psycopg.Error as exc:
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
        return list(self._columns)

    def column_types(self) -> dict[str, str]:
        """Query types by the columns' type oids; the one-column primary key, if any."""
        if self._types is None:
            probe = sql.SQL("SELECT * FROM {} LIMIT 0").format(self.identifier)
            primary = (
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary"
            )
            try:
                with self._source.connection() as conn:
                    described = conn.execute(probe).description or []
                    name = self.identifier.as_string(conn)
                    keys = [row[0] for row in conn.execute(primary, (name,))]
            except psycopg.Error as exc:
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
            self._types = {d.name: _QUERY_TYPES.get(d.type_code, "text") for d in described}
            self._key = keys[0] if len(keys) == 1 else None
        return dict(self._types)

    def key_column(self) -> str | None:
        self.column_types()
        return self._key

    def search_index(self) -> SearchIndex | None:
        """A GIN index on ``to_tsvector(…)`` of this table (``search.py``); looked for once."""
        if self._search is False:
            try:
                with self._source.connection() as conn:
                    name = self.identifier.as_string(conn)
                    found = conn.execute(PG_GIN_INDEXES, {"table": name}).fetchall()
                    self._search = pg_search_index(found)
            except psycopg.Error as exc:
                raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
        return self._search  # type: ignore[return-value]

    def column_details(self) -> list[dict[str, Any]]:
        query = (
            "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
        try:
            with self._source.connection() as conn:
                rows = conn.execute(query, (self.identifier.as_string(conn),)).fetchall()
        except psycopg.Error as exc:
            raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc
        types = self.column_types()
        return [
            {"name": n, "type": types.get(n, "text"), "source_type": t, "nullable": nullable}
            for n, t, nullable in rows
        ]

    @property
    def sql_name(self) -> tuple[str, ...]:
        """The table's name as SQL identifier parts, for qualified column names."""
        return (self.schema, self.table)

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
        walk: KeyWalk | None = None,
    ) -> RowStream:
        """Stream ``columns`` (all when None) with ``tail`` (`` WHERE … ORDER BY …`` with
        ``%s`` placeholders for ``params``, from ``query/sql.py``), in one snapshot; ``typed``:
        NULL kept for ``typed_batches()`` (NDJSON, CSV with ``null=``); ``csv``: the rows will
        be read as ``csv_lines(*csv)``, so a COPY starts now (``pgstream``); ``fast_start``:
        a search, planned per query (``pgplan``, with ``walk`` when it is in key order), whose
        CSV too comes from the cursor, never a ``COPY`` of the query."""
        first = min(FIRST_ROWS, self._source.fetch_rows, limit or FIRST_ROWS)
        conn = self._source.borrow()
        try:
            return PostgresStream(
                self._source.pool,
                conn,
                self.identifier,
                (*params, limit, offset),
                self._source.fetch_rows,
                chosen=columns,
                tail=tail,
                typed=typed,
                request_values=bool(params),
                time_limit=self._source.time_limit,
                csv=csv,
                search=(walk, offset + first) if fast_start else None,
            )
        except BadValue:
            self._source.pool.putconn(conn)
            raise
        except psycopg.errors.QueryCanceled as exc:  # statement_timeout: no first row in time
            self._source.pool.putconn(conn)
            raise QueryTimeout(self.name, self._source.time_limit) from exc
        except psycopg.Error as exc:
            self._source.pool.putconn(conn)
            raise SourceError(f"cannot read table {self.name!r}: {exc}") from exc

    def check(self) -> None:
        """Read the table's first row through a pooled connection (for /readyz)."""
        query = sql.SQL("SELECT * FROM {} LIMIT 1").format(self.identifier)
        try:
            with self._source.connection() as conn:
                conn.execute(query).fetchone()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise SourceError(f"PostgreSQL unreachable: {exc}") from exc
        except psycopg.Error as exc:
            raise SourceError(f"cannot read PostgreSQL table {self.name!r}: {exc}") from exc


class PostgresSource:
    """The pool and the configured tables of one PostgreSQL database."""

    def __init__(
        self,
        dsn: str,
        tables: list[str],
        *,
        fetch_rows: int,
        pool_min: int,
        pool_max: int,
        pool_timeout: float,
        time_limit: float = 0.0,
    ) -> None:
        self.fetch_rows = fetch_rows
        self.time_limit = time_limit  # seconds a stream's query may take to its first row
        self.pool_timeout = pool_timeout
        self.pool = ConnectionPool(
            dsn,
            min_size=pool_min,
            max_size=pool_max,
            timeout=pool_timeout,
            kwargs={"application_name": APPLICATION_NAME},
            configure=_read_only,
            open=False,
            name="tablestream-postgres",
        )
        self.pool.open(wait=False)
        self.tables = self._resolve(tables)

    def borrow(self) -> psycopg.Connection:
        try:
            return self.pool.getconn(timeout=self.pool_timeout)
        except PoolTimeout as exc:
            raise SourceBusy(
                f"all {self.pool.max_size} PostgreSQL connections are busy", retry_after=2
            ) from exc

    def connection(self):  # type: ignore[no-untyped-def]
        """A pooled connection for a short catalogue query (a context manager)."""
        try:
            return self.pool.connection(timeout=self.pool_timeout)
        except PoolTimeout as exc:
            raise SourceBusy("no PostgreSQL connection available", retry_after=2) from exc

    def close(self) -> None:
        self.pool.close()

    def _resolve(self, entries: list[str]) -> list[PostgresTable]:
        tables: list[PostgresTable] = []
        for entry in entries:
            schema, _, name = entry.rpartition(".")
            schema = schema or "public"
            if name == "*":
                tables.extend(PostgresTable(self, schema, t) for t in self._list_schema(schema))
            else:
                tables.append(PostgresTable(self, schema, name))
        return tables

    def _list_schema(self, schema: str) -> list[str]:
        query = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1"
        )
        try:
            with psycopg.connect(self.pool.conninfo, connect_timeout=5) as conn:
                names = [row[0] for row in conn.execute(query, (schema,))]
        except psycopg.Error as exc:
            raise SourceError(
                f"TABLESTREAM_PG_TABLES={schema}.* needs the database at start-up to list the "
                f"schema, and it cannot be reached: {exc}".strip()
            ) from exc
        if not names:
            raise SourceError(f"TABLESTREAM_PG_TABLES: schema {schema!r} has no tables or views")
        return names


def _read_only(conn: psycopg.Connection) -> None:
    """Every pooled connection reads only: a misconfigured table can never be written to."""
    conn.read_only = True
