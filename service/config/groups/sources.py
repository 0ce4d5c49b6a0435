"""Where rows come from: the SQLite file and CSV files served, the synthetic table, and how a
stream reads a database (its page cache, the rows of one fetch).

PostgreSQL's settings are in ``postgres.py``, beside the pool that only the "pg" extra needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import KIB, MIB, csv_tables, integer, text
from ..declare import setting

__all__ = ["SourceSettings"]


@dataclass(frozen=True)
class SourceSettings:
    """The row sources: what is served, and how a stream reads it."""

    db: str = setting(
        text,
        "data/demo.sqlite3",
        "SQLite file whose tables are served (read-only); empty to serve none",
    )
    csv: tuple[tuple[str, str], ...] = setting(
        csv_tables,
        "",
        "CSV files served as tables, NAME=PATH[,NAME=PATH...]",
    )
    csv_field_limit: int = setting(
        integer(1 * KIB, 1024 * MIB, "bytes"),
        str(16 * MIB),
        "longest CSV field read (characters; bytes for ASCII); a longer one ends the stream "
        "with an error naming the row",
    )
    synthetic_rows: int = setting(
        integer(0, 10**12),
        "10000000",
        "rows of the built-in 'synthetic' table; 0 turns the table off",
    )
    sqlite_cache_kib: int = setting(
        integer(0, 1024 * 1024, "KiB"),
        "256",
        "SQLite page cache of each stream's connection (PRAGMA cache_size); 0 = SQLite's default "
        "(2000 KiB). A stream reads each page once, so a bigger cache buys no speed (measured) but "
        "costs RAM per stream and leaves the heap fragmented after many concurrent streams",
    )
    fetch_rows: int = setting(
        integer(0, 100_000),
        "0",
        "rows fetched from a database cursor per round trip (fetchmany size); 0 = per source: "
        "128 for SQLite (in process: a smaller fetch leaves less pinned after stalled "
        "readers), 256 for PostgreSQL; raise it for a database far away",
    )
