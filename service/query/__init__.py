"""Asking a table from the URL: filters, sort, columns and keyset pages, pushed down where they can.

``spec`` reads and checks the query string, ``sql`` writes it as parameterized SQL for the
databases, ``rows`` applies it in Python for the sources without SQL, ``links`` builds the page's
sort, remove-filter and "next rows" URLs. ``open_query`` picks the way for a table.
"""

from __future__ import annotations

from ..sources.base import RowStream, Table
from .rows import python_query
from .spec import Query, QueryError, parse_query
from .sql import POSTGRES, SQLITE, Dialect, clauses

DIALECTS: dict[str, Dialect] = {"sqlite": SQLITE, "postgres": POSTGRES}
"""Sources that take SQL (``open_where``): the query is pushed down to them."""

__all__ = ["Query", "QueryError", "open_query", "parse_query"]


def open_query(
    table: Table, q: Query, limit: int | None, offset: int, sort_rows: int, typed: bool = False
) -> RowStream:
    """Rows of ``table`` as ``q`` asks: the plain stream, the database's SQL, or Python.

    ``typed``: the stream's ``typed_batches()`` will be read (NULL kept, ``kinds``), which a
    database source must know before its query is sent."""
    dialect = DIALECTS.get(table.kind)
    paged = limit is not None and table.key_column() is not None if dialect else False
    if q.is_plain and not paged:
        if typed and dialect is not None:
            return table.open_where(None, "", (), limit=limit, offset=offset, typed=True)  # type: ignore[attr-defined]
        return table.open(limit=limit, offset=offset)
    if dialect is not None:
        # A query, or a page (limit) of a table with a key: in SQL, ordered by the key, so the
        # same URL gives the same rows (PostgreSQL may start a plain scan mid-table, where a
        # running scan is) and the page's "next rows" link continues it exactly.
        name = table.sql_name  # type: ignore[attr-defined]
        tail, params = clauses(dialect, q, table.key_column(), name)
        return table.open_where(q.columns, tail, params, limit=limit, offset=offset, typed=typed)  # type: ignore[attr-defined]
    return python_query(table, q, limit, offset, sort_rows)
