"""A Query applied in Python, for sources without SQL (CSV files, the synthetic table).

Rows stay a stream: filters test each row as it passes, ``offset`` and ``limit`` count the rows
that passed, columns are picked with one ``itemgetter`` per row. Cells are the sources' text;
a column compares as its type (``Table.column_types``: the synthetic table's ``id`` is an
integer, a CSV file's columns are text), and a cell that is empty (NULL) or does not parse as
the type matches no comparison, as NULL matches none in SQL.

A sort needs every row before the first can be sent, so here it is **bounded**: it is allowed
only with a ``limit``, and ``offset + limit`` may not exceed ``TABLESTREAM_SORT_ROWS`` (10,000 by
default). The rows are then picked in one pass with a heap of that many rows
(``heapq.nsmallest``): memory is bounded by the page, not the file. Anything bigger belongs in
a database, which sorts on disk: load the CSV into SQLite (``sqlite3 db '.import --csv f t'``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from ..sources.base import BATCH_ROWS, BatchedRowStream, Row, RowStream, Table
from .spec import Filter, Query, QueryError

__all__ = ["python_query"]


def _number(kind: str) -> Callable[[str], Any]:
    parse: Callable[[str], Any] = {"integer": int, "real": float, "numeric": Decimal}[kind]

    def convert(cell: str) -> Any:
        try:
            return parse(cell) if cell else None
        except (ValueError, InvalidOperation):
            return None

    return convert


def _converter(kind: str) -> Callable[[str], Any]:
    if kind in ("integer", "real", "numeric"):
        return _number(kind)
    return lambda cell: cell


def _test(f: Filter, index: int, kind: str) -> Callable[[Row], bool]:
    conv = _converter(kind)
    value = f.value
    if f.lookup == "isnull":
        return lambda row: (row[index] == "") is value
    if f.lookup == "contains":
        return lambda row: value in row[index]
    if f.lookup == "startswith":
        return lambda row: row[index].startswith(value)
    if f.lookup == "in":
        values = set(value)
        return lambda row: conv(row[index]) in values
    if f.lookup == "exact":
        return lambda row: conv(row[index]) == value
    if f.lookup == "not":
        return lambda row: conv(row[index]) != value
    compare = {
        "gt": lambda a: a > value,
        "gte": lambda a: a >= value,
        "lt": lambda a: a < value,
        "lte": lambda a: a <= value,
    }[f.lookup]

    def test(row: Row) -> bool:
        cell = conv(row[index])
        return cell is not None and cell != "" and compare(cell)

    return test


class _Queried(BatchedRowStream):
    def __init__(self, inner: RowStream, rows: Iterable[Row], columns: list[str]) -> None:
        self._inner = inner
        self._rows = rows
        self.columns = columns
        if inner.kinds is not None:  # the chosen columns' kinds, for typed NDJSON
            kind = dict(zip(inner.columns, inner.kinds, strict=True))
            self.kinds = [kind[c] for c in columns]
        self.rows_read = 0

    def batches(self) -> Iterator[list[Row]]:
        rows = iter(self._rows)
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            self.rows_read += len(batch)
            yield batch

    def close(self) -> None:
        self._inner.close()


def python_query(
    table: Table, q: Query, limit: int | None, offset: int, sort_rows: int
) -> RowStream:
    """``q`` on ``table``'s rows in Python; QueryError when it cannot be done here (a sort
    beyond ``sort_rows``, a continuation the table has no key for)."""
    start = 0
    if q.after is not None:
        seek = getattr(table, "seek", None)
        if seek is None or q.sort is not None or len(q.after) != 1 or q.after[0] is None:
            raise QueryError(
                f"the table {table.name!r} cannot continue from a key (_after) here; "
                "expected offset="
            )
        start = seek(q.after[0])
    if q.sort is not None and (limit is None or offset + limit > sort_rows):
        raise QueryError(
            f"the table {table.name!r} is not in a database, so a sort is done in memory and "
            f"must be bounded: expected limit= with offset + limit at most {sort_rows:,} "
            "(TABLESTREAM_SORT_ROWS), or the data served from SQLite or PostgreSQL."
        )
    inner = table.open(limit=None, offset=start)
    try:
        names = list(inner.columns)
        index = {name: i for i, name in enumerate(names)}
        rows: Iterable[Row] = itertools.chain.from_iterable(inner.batches())
        tests = [_test(f, index[f.column], q.types.get(f.column, "text")) for f in q.filters]
        if len(tests) == 1:
            rows = filter(tests[0], rows)
        elif tests:
            rows = filter(lambda row: all(t(row) for t in tests), rows)
        if q.sort is not None:
            assert limit is not None
            rows = _bounded_sort(rows, index[q.sort], q, offset + limit)
        rows = itertools.islice(rows, offset, None if limit is None else offset + limit)
        shown = list(q.columns or names)
        if shown != names:
            keep = [index[c] for c in shown]
            pick = itemgetter(*keep) if len(keep) > 1 else (lambda row: (row[keep[0]],))
            rows = map(pick, rows)
        return _Queried(inner, rows, shown)
    except BaseException:
        inner.close()
        raise


def _bounded_sort(rows: Iterable[Row], column: int, q: Query, count: int) -> list[Row]:
    """The first ``count`` rows in the sort's order (NULLs first ascending, last descending;
    ties in source order, reversed when descending, as ``ORDER BY col, key`` would give)."""
    conv = _converter(q.types.get(q.sort or "", "text"))

    def key(numbered: tuple[int, Row]) -> tuple:
        position, row = numbered
        cell = row[column]
        value = conv(cell) if cell != "" else None
        return (0, 0, position) if value is None else (1, value, position)

    numbered = enumerate(rows)
    if q.descending:
        best = heapq.nlargest(count, numbered, key=key)
        # NULLs last: nlargest put them at the end already (their key is smallest).
    else:
        best = heapq.nsmallest(count, numbered, key=key)
    return [row for _, row in best]
