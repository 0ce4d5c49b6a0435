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


def open_query(table: Table, q: Query, limit: int | None, offset: int, sort_rows: int) -> RowStream:
    """Rows of ``table`` as ``q`` asks: the plain stream, the database's SQL, or Python."""
    if q.is_plain:
        return table.open(limit=limit, offset=offset)
    dialect = DIALECTS.get(table.kind)
    if dialect is not None:
        name = table.sql_name  # type: ignore[attr-defined]
        tail, params = clauses(dialect, q, table.key_column(), name)
        return table.open_where(q.columns, tail, params, limit=limit, offset=offset)  # type: ignore[attr-defined]
    return python_query(table, q, limit, offset, sort_rows)
