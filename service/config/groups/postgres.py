"""PostgreSQL as a row source (the "pg" extra): the DSN, the tables served and the connection
pool that bounds concurrent PostgreSQL streams per process.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import integer, number, pg_tables, text
from ..declare import setting

__all__ = ["PostgresSettings"]


@dataclass(frozen=True)
class PostgresSettings:
    """PostgreSQL: what is served and the pool."""

    pg_dsn: str = setting(
        text,
        "",
        "PostgreSQL connection string (libpq DSN or URI); empty = no PostgreSQL",
    )
    pg_tables: tuple[str, ...] = setting(
        pg_tables,
        "",
        "PostgreSQL tables or views to serve: TABLE, SCHEMA.TABLE, SCHEMA.*",
    )
    pg_pool_min: int = setting(integer(0, 100), "1", "PostgreSQL connections kept open when idle")
    pg_pool_max: int = setting(
        integer(1, 1000),
        "8",
        "most PostgreSQL connections at once = concurrent PostgreSQL streams per process",
    )
    pg_pool_timeout: float = setting(
        number(0.1, 300, "seconds"),
        "2",
        "seconds a stream waits for a free PostgreSQL connection before a 503 with Retry-After",
    )
