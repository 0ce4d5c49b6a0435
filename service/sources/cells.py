"""How a value becomes a cell's text — one formatter for every source.

SQLite, CSV and PostgreSQL hand back ints, floats, Decimals, dates, bytes and NULLs; the page
must show them the same way whichever source they came from. Escaping is not done here: each
format applies its own rules to the same text — HTML through ``stream.markup.rows_html``, which
escapes a batch of rows at once, CSV through the csv module, NDJSON through json.

``format_value`` is the rule; ``format_batch`` applies it a column at a time, and a database
source that can have the database write the text itself (``sources.pgtext``) skips it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import repeat
from operator import methodcaller
from typing import Any

__all__ = ["format_batch", "format_column", "format_value", "once_per_distinct"]


def _format_datetime(value: dt.datetime) -> str:
    return value.isoformat(sep=" ")


def _format_bytes(value: bytes | bytearray | memoryview) -> str:
    return "\\x" + bytes(value).hex()


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: lambda v: v,
    int: str,
    bool: lambda v: "true" if v else "false",
    float: repr,
    Decimal: lambda v: format(v, "f"),
    dt.datetime: _format_datetime,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    bytes: _format_bytes,
    bytearray: _format_bytes,
    memoryview: _format_bytes,
    type(None): lambda v: "",
    dict: lambda v: json.dumps(v, ensure_ascii=False, default=str),
    list: lambda v: json.dumps(v, ensure_ascii=False, default=str),
}

_BOOLS = {True: "true", False: "false"}.__getitem__
_ISO_SPACE = methodcaller("isoformat", " ")
_NONE = type(None)

_BY_COLUMN: dict[type, Callable[[Sequence[Any]], list[str]]] = {
    # A column whose cells are all of one type: one C-level map, no Python call per cell.
    int: lambda col: list(map(str, col)),
    float: lambda col: list(map(float.__repr__, col)),
    bool: lambda col: list(map(_BOOLS, col)),
    Decimal: lambda col: list(map(format, col, repeat("f"))),
    dt.datetime: lambda col: list(map(_ISO_SPACE, col)),
    dt.date: lambda col: list(map(dt.date.isoformat, col)),
    dt.time: lambda col: list(map(dt.time.isoformat, col)),
    _NONE: lambda col: [""] * len(col),
}


def format_value(value: Any) -> str:
    """The text of one cell; NULL is the empty string, anything unknown goes through str()."""
    formatter = _BY_TYPE.get(value.__class__)
    if formatter is None:
        return str(value)
    return formatter(value)


def _format_cells(col: Sequence[Any]) -> list[str]:
    by_type = _BY_TYPE.get
    return [v if v.__class__ is str else (by_type(v.__class__) or str)(v) for v in col]


def format_column(col: Sequence[Any]) -> Sequence[str]:
    """One column's cells as ``format_value`` writes them (the column itself when all text):
    for writers that work a column at a time (CSV) and would otherwise transpose the rows
    ``format_batch`` gives back into columns again."""
    types = set(map(type, col))
    if len(types) == 1:
        (kind,) = types
        if kind is str:
            return col
        by_column = _BY_COLUMN.get(kind)
        if by_column is not None:
            return by_column(col)
    elif types == {str, _NONE}:
        return ["" if v is None else v for v in col]
    return _format_cells(col)


def format_batch(rows: Sequence[Sequence[Any]]) -> list[tuple[str, ...]]:
    """Format every cell of a batch of rows as ``format_value`` does, a column at a time.

    A database column mostly holds one type: its cells are formatted by one ``map`` over the
    column (``str`` over ints, ``float.__repr__`` over floats), a text column is passed through
    whole and a text column with NULLs takes one comprehension. Columns of mixed types and
    ragged rows (a CSV file) are formatted cell by cell. On the demo ``orders`` table this
    formats 1.6x faster than cell by cell (780k → 1.27M rows/s in process, docs/sources.md).
    """
    if not rows:
        return []
    if len(set(map(len, rows))) != 1:
        return [tuple(_format_cells(row)) for row in rows]
    return list(zip(*map(format_column, zip(*rows, strict=True)), strict=True))


def once_per_distinct(convert: Callable[[Any], str], column: Sequence[Any]) -> list[str] | None:
    """``[convert(v) for v in column]`` converting each distinct value once, when a column has
    few (a product, a status, a mostly-NULL note: at most a quarter as many as its cells); None
    otherwise, and the caller converts cell by cell in its own fast way. On the demo ``orders``
    the quoted ``product`` column took ~13% of a CSV stream cell by cell."""
    distinct = set(column)
    if len(distinct) * 4 > len(column):
        return None
    converted = {v: convert(v) for v in distinct}
    return list(map(converted.__getitem__, column))
