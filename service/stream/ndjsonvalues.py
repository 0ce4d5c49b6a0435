"""Typed NDJSON of Python values: cells of any type (SQLite's values, psycopg's), by their type.

SQLite's types are its values' own, and psycopg hands some columns over as Python objects: a
cell's JSON follows its Python type (``value_encoders``). A column is looked at once: when all
its cells are of one type (the usual case) they go through one ``map`` of that type's encoder,
a C function for strings, integers and floats; only a mixed column picks an encoder per cell.
A type with no JSON spelling here is a string, the text the page shows (``cells.format_value``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C function
from math import isfinite
from typing import Any

from ..sources.cells import format_value
from .ndjsonnumbers import decimal_json, float_json
from .ndjsontext import QUOTED, Column, Encode, Encoded, string_cells, text_column

__all__ = ["fallback", "value_column", "value_encoders"]


def _bytes(value: bytes | bytearray | memoryview) -> str:
    return '"\\\\x' + bytes(value).hex() + '"'


def _embedded(value: Any) -> str:
    """A JSON value or an array, as JSON; cells JSON has no spelling for as their text."""
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=format_value
        )
    except ValueError:  # a NaN inside an array: the whole cell as its text
        return encode_basestring(format_value(value))


def value_encoders(decimals_as_numbers: bool) -> dict[type, Callable[[Any], str]]:
    """Each Python type's JSON spelling, one value at a time."""
    return {
        str: encode_basestring,
        int: int.__repr__,
        bool: lambda v: "true" if v else "false",
        float: float_json,
        type(None): lambda v: "null",
        Decimal: decimal_json(decimals_as_numbers),
        dt.datetime: lambda v: QUOTED(v.isoformat()),
        dt.date: lambda v: QUOTED(v.isoformat()),
        dt.time: lambda v: QUOTED(v.isoformat()),
        bytes: _bytes,
        bytearray: _bytes,
        memoryview: _bytes,
        dict: _embedded,
        list: _embedded,
    }


def fallback(value: Any) -> str:
    """A value of a type with no JSON spelling here: the page's text, as a string."""
    return encode_basestring(format_value(value))


def value_column(decimals_as_numbers: bool) -> Encode:
    """Cells of any Python type (SQLite, psycopg): one ``map`` when a column is of one type."""
    get = value_encoders(decimals_as_numbers).get

    def column(col: Column) -> Encoded:
        kinds = set(map(type, col))
        if kinds == {str, type(None)}:  # a text column with NULLs
            return False, string_cells(col)
        if len(kinds) == 1:
            (kind,) = kinds
            if kind is str:
                return text_column(col)
            if kind is float and not all(map(isfinite, col)):
                return False, list(map(float_json, col))
            if kind is float:
                return False, list(map(float.__repr__, col))
            if kind is type(None):
                return False, ["null"] * len(col)
            return False, list(map(get(kind) or fallback, col))
        return False, [(get(v.__class__) or fallback)(v) for v in col]

    return column
