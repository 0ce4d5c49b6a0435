"""Facet counts: how many rows of a filtered table hold each value of a column, by the database.

One ``GROUP BY`` per facet, with the same pushed-down ``WHERE`` as the table's stream
(``query/sql.py``), the top ``top`` values by count (NULL a value of its own), each under its
own time limit (``TABLESTREAM_FACET_TIME_LIMIT_MS``): a count that cannot finish in time says
``timed_out`` instead of holding a worker thread. SQLite is interrupted by its progress handler
(``deadline.py``), PostgreSQL by ``statement_timeout`` set for the one transaction. Suggested
facets come from a bounded sample (``SAMPLE_ROWS``): columns with a few distinct values there.
Only database sources have this; the view refuses CSV files and the synthetic table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from .base import SourceError, Table
from .deadline import SQLiteDeadline
from .search import BadSearch, is_search_error

__all__ = ["SAMPLE_ROWS", "Facet", "facet_counts", "few_distinct"]

SAMPLE_ROWS = 1000
"""Rows read to suggest facets: a column with at most ``top`` distinct values among them."""


@dataclass(frozen=True)
class Facet:
    values: list[tuple[Any, int]]
    truncated: bool
    timed_out: bool


def _run(table: Table, sql: str, params: Sequence[Any], seconds: float) -> list[tuple] | None:
    """``sql``'s rows, or None when it did not finish within ``seconds``."""
    if table.kind == "sqlite":
        from .sqlite import connect_readonly

        with closing(connect_readonly(table.path)) as conn:  # type: ignore[attr-defined]
            deadline = SQLiteDeadline(conn, seconds).start()
            try:
                return conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                if deadline.expired(exc):
                    return None
                if is_search_error(exc, sql):
                    raise BadSearch(str(exc)) from exc
                raise SourceError(f"cannot count table {table.name!r}: {exc}") from exc
    import psycopg

    try:
        with table._source.connection() as conn:  # type: ignore[attr-defined]
            limit = f"{max(1, round(seconds * 1000))}ms"
            conn.execute("SELECT set_config(%s, %s, true)", ("statement_timeout", limit))
            return conn.execute(sql, tuple(params)).fetchall()
    except psycopg.errors.QueryCanceled:
        return None
    except psycopg.Error as exc:
        raise SourceError(f"cannot count table {table.name!r}: {exc}") from exc


def facet_counts(
    table: Table,
    quote: Callable[[str], str],
    column: str,
    where: str,
    params: Sequence[Any],
    top: int,
    seconds: float,
) -> Facet:
    """The ``top`` most frequent values of ``column`` among the rows ``where`` selects."""
    name = ".".join(quote(part) for part in table.sql_name)  # type: ignore[attr-defined]
    col = f"{name}.{quote(column)}"  # qualified: a search joins an index of the same names
    sql = (
        f"SELECT {col}, count(*) FROM {name}{where} GROUP BY {col} "
        f"ORDER BY count(*) DESC, {col} LIMIT {int(top) + 1}"
    )
    rows = _run(table, sql, params, seconds)
    if rows is None:
        return Facet([], truncated=False, timed_out=True)
    return Facet([(r[0], r[1]) for r in rows[:top]], truncated=len(rows) > top, timed_out=False)


def few_distinct(
    table: Table, quote: Callable[[str], str], columns: Sequence[str], top: int, seconds: float
) -> list[str]:
    """Columns with 2 to ``top`` distinct values in the first ``SAMPLE_ROWS`` rows."""
    if not columns:
        return []
    name = ".".join(quote(part) for part in table.sql_name)  # type: ignore[attr-defined]
    counts = ", ".join(f"count(DISTINCT {quote(c)})" for c in columns)
    picked = ", ".join(quote(c) for c in columns)
    sql = f"SELECT {counts} FROM (SELECT {picked} FROM {name} LIMIT {SAMPLE_ROWS}) AS sample"
    rows = _run(table, sql, (), seconds)
    if not rows:
        return []
    return [c for c, n in zip(columns, rows[0], strict=True) if 2 <= n <= top]
