"""Where rows come from. ``build_catalog`` turns the settings into the tables the service serves.

The catalogue is fixed at start-up: a URL can only name one of its tables, so no path or SQL
from a request ever reaches a file system or a database.
"""

from __future__ import annotations

from ..config import ConfigError, Settings
from .base import BadValue, RowStream, SourceBusy, SourceError, Table
from .csv import CSVTable
from .deadline import QueryTimeout
from .sqlite import sqlite_tables
from .synthetic import SyntheticTable

__all__ = [
    "BadValue",
    "QueryTimeout",
    "RowStream",
    "SourceBusy",
    "SourceError",
    "Table",
    "build_catalog",
]


SQLITE_FETCH_ROWS = 128
"""SQLite's rows per fetch when TABLESTREAM_FETCH_ROWS is 0. A stalled reader holds one fetch of
raw rows and its formatted batch; after 20 stalled readers plus 250 slowloris sockets the
process stayed +5.2-5.6 MiB above idle with 256-row fetches (CPython keeps a small-object arena
while any object in it lives) and +3.9-4.0 MiB with 128, which costs ~4% of a templated page's
rows/s and nothing on CSV (docs/reliability.md). SQLite is in process: no round trip to save."""
PG_FETCH_ROWS = 256
"""PostgreSQL's: each fetch is a round trip; 64-row fetches were ~15% slower on localhost."""


def _postgres_tables(settings: Settings) -> list[Table]:
    try:
        from .postgres import PostgresSource
    except ImportError as exc:
        raise ConfigError(
            f"TABLESTREAM_PG_DSN is set but psycopg is missing ({exc}); "
            "install the extra: pip install 'tablestream[pg]'"
        ) from exc
    source = PostgresSource(
        settings.pg_dsn,
        list(settings.pg_tables),
        fetch_rows=settings.fetch_rows or PG_FETCH_ROWS,
        pool_min=settings.pg_pool_min,
        pool_max=settings.pg_pool_max,
        pool_timeout=settings.pg_pool_timeout,
        time_limit=settings.query_time_limit_ms / 1000,
    )
    return list(source.tables)


def build_catalog(settings: Settings) -> dict[str, Table]:
    """Every configured table by name; ConfigError when a source is missing or names clash."""
    tables: list[Table] = []
    try:
        if settings.synthetic_rows:
            tables.append(SyntheticTable(settings.synthetic_rows))
        if settings.db:
            fetch_rows = settings.fetch_rows or SQLITE_FETCH_ROWS
            limit = settings.query_time_limit_ms / 1000
            tables.extend(sqlite_tables(settings.db, fetch_rows, settings.sqlite_cache_kib, limit))
        tables.extend(CSVTable(name, path, settings.csv_field_limit) for name, path in settings.csv)
        if settings.pg_dsn:
            tables.extend(_postgres_tables(settings))
    except SourceError as exc:
        raise ConfigError(str(exc)) from exc
    catalog: dict[str, Table] = {}
    for table in tables:
        if table.name in catalog:
            other = catalog[table.name]
            raise ConfigError(
                f"table name {table.name!r} is served by both the {other.kind} and the "
                f"{table.kind} source; rename one (or turn the synthetic table off with "
                "TABLESTREAM_SYNTHETIC_ROWS=0)"
            )
        catalog[table.name] = table
    return catalog
