"""The source paths as they were before issue 17, for the side-by-side only (never in the app).

``install()`` puts them back in the bench server's process when it is started with
``BENCH_CELLS=before``: every cell loaded as a Python object and formatted one by one
(``format_batch`` as it was, and the columns CSV formats from SQLite values), PostgreSQL
columns selected as they are (no server-written text), gzip on the standard library's zlib,
PostgreSQL's ``fetchmany`` one round trip at a time (no ``FetchAhead``), CSV written from
the rows (no ``COPY``). The same URLs then
serve the same bytes the old way, so one run measures both and checks they send identical
bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tablestream.sources import cells, cursor
from tablestream.stream import compression, csvnulls

__all__ = ["format_batch_cell_by_cell", "format_column_cell_by_cell", "install"]


def format_batch_cell_by_cell(rows: Iterable[Sequence[Any]]) -> list[tuple[str, ...]]:
    """``cells.format_batch`` before it worked a column at a time."""
    by_type = cells._BY_TYPE.get
    return [
        tuple([v if v.__class__ is str else (by_type(v.__class__) or str)(v) for v in row])
        for row in rows
    ]


def format_column_cell_by_cell(col: Sequence[Any]) -> list[str]:
    """``cells.format_column`` as a cell-by-cell loop (CSV of SQLite values reads columns)."""
    return [row[0] for row in format_batch_cell_by_cell([(v,) for v in col])]


def install() -> None:
    cursor.format_batch = format_batch_cell_by_cell
    csvnulls.format_column = format_column_cell_by_cell
    compression.isal_zlib = None
    try:
        from psycopg import sql

        from tablestream.sources import pgstream
    except ImportError:  # no pg extra: nothing PostgreSQL to put back
        return

    def as_they_are(names: Sequence[str], *_: Any, **__: Any) -> tuple[Any, bool]:
        # Not all text: no COPY either (CSV written from the rows, as before).
        return sql.SQL(", ").join(map(sql.Identifier, names)), False

    pgstream.TEXT_OIDS = frozenset()  # typed streams: every column a psycopg value
    pgstream.text_select = as_they_are
    pgstream.copy_select = as_they_are
    pgstream.FetchAhead = _FetchInTurn


class _FetchInTurn:
    """``FetchAhead``'s interface over the cursor's own ``fetchmany``: one round trip each."""

    def __init__(self, conn: Any, cursor: Any) -> None:
        self.fetchmany = cursor.fetchmany

    def drain(self) -> None:
        pass
