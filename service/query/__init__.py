"""Asking a table from the URL: filters, sort, columns and keyset pages, pushed down where they can.

``spec`` reads and checks the query string, ``sql`` writes it as parameterized SQL for the
databases, ``rows`` applies it in Python for the sources without SQL, ``links`` builds the page's
sort, remove-filter and "next rows" URLs, ``keyset`` signs and opens their ``_after`` tokens.
``open_query`` picks the way for a table; ``visible_key`` is the key a caller may page by.
"""

from __future__ import annotations

from ..sources.base import RowStream, Table
from .rows import python_query
from .spec import Query, QueryError, parse_query
from .sql import NO_INDEX, POSTGRES, SQLITE, Dialect, clauses, key_walk

DIALECTS: dict[str, Dialect] = {"sqlite": SQLITE, "postgres": POSTGRES}
"""Sources that take SQL (``open_where``): the query is pushed down to them."""

__all__ = ["Query", "QueryError", "open_query", "parse_query", "visible_key"]


def visible_key(table: Table, hidden: frozenset[str]) -> str | None:
    """The key ``table``'s rows are paged and continued by for a caller who may not see the
    ``hidden`` columns: the table's key, or None when it has none or it is hidden.

    A caller without the key is served as if the table had none: no ``_after`` (the same 400),
    no order by the key, "next rows" by ``offset``. Ordering or continuing by a column would
    tell its values, a row at a time (issue 28: a hidden id found in 20 requests).
    SourceError when the table's columns cannot be read."""
    key = table.key_column()
    return key if key is not None and key not in hidden else None


def open_query(
    table: Table,
    q: Query,
    key: str | None,
    limit: int | None,
    offset: int,
    sort_rows: int,
    typed: bool = False,
    csv: tuple[str, bool] | None = None,
) -> RowStream:
    """Rows of ``table`` as ``q`` asks: the plain stream, the database's SQL, or Python.

    ``key``: the caller's ``visible_key``, by which a page is ordered and continued.
    ``typed``: the stream's ``typed_batches()`` will be read (NULL kept, ``kinds``), which a
    database source must know before its query is sent; ``csv``: the stream will be read as
    ``csv_lines(*csv)`` (NULL's marker, whether the empty string is NULL too), which PostgreSQL
    answers with a COPY sent at once."""
    dialect = DIALECTS.get(table.kind)
    paged = limit is not None and key is not None if dialect else False
    if q.is_plain and not paged:
        if (typed or csv) and dialect is not None:
            return table.open_where(None, "", (), limit=limit, offset=offset, typed=typed, csv=csv)  # type: ignore[attr-defined]
        return table.open(limit=limit, offset=offset)
    if dialect is not None:
        # A query, or a page (limit) of a table with a key: in SQL, ordered by the key, so the
        # same URL gives the same rows (PostgreSQL may start a plain scan mid-table, where a
        # running scan is) and the page's "next rows" link continues it exactly.
        name = table.sql_name  # type: ignore[attr-defined]
        index = table.search_index() if q.search is not None else None
        tail, params = clauses(dialect, q, key, name, index)
        return table.open_where(  # type: ignore[attr-defined]
            q.columns,
            tail,
            params,
            limit=limit,
            offset=offset,
            typed=typed,
            csv=csv,
            fast_start=q.search is not None,  # a search's first rows: from the cursor
            walk=key_walk(dialect, q, key, name, index),
        )
    if q.search is not None:
        raise QueryError(NO_INDEX)  # CSV files and the synthetic table have no index
    return python_query(table, q, limit, offset, sort_rows)
