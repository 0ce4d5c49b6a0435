"""Typed NDJSON of cells whose type is their column's declared one, not their own.

Two sources hand over cells with no useful type of their own, and a declaration says what they
are: a CSV file's fields are text, typed by its sidecar (``sources/csvtypes.py``: ``csv:*``
kinds), and a SQLite column declared ``DATE``/``DATETIME``/``TIMESTAMP``
(``sources/sqlitetypes.py``: ``sqlite:timestamp``) holds text in SQLite's ``datetime()`` form.
Here that text becomes JSON's numbers, booleans and ISO timestamps with a ``T``; a cell that
does not fit its declaration stays a string, as the file has it, and the stream goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C function
from typing import Any

from .ndjsonnumbers import decimal_json, float_json
from .ndjsontext import Column, Encode, Encoded, iso_string
from .ndjsonvalues import fallback, value_column, value_encoders

__all__ = ["csv_kinds", "sqlite_datetime_column"]

_SQLITE_DATETIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_SQLITE_DATETIME_CELL = re.compile(_SQLITE_DATETIME)
_SQLITE_DATETIME_LINES = re.compile(f"{_SQLITE_DATETIME}(?:\n{_SQLITE_DATETIME})*")


_SEPARATORS = ((4, "-"), (7, "-"), (10, " "), (13, ":"), (16, ":"))


def _whole_seconds(col: Column) -> bool:
    """Whether every cell is ``YYYY-MM-DD HH:MM:SS`` (text): checked by slices of the column's
    join, at ~1/3 of the regex's cost (the common column, ``datetime()``'s own output)."""
    if set(map(len, col)) != {19}:
        return False
    blob = "".join(col)
    count = len(col)
    if any(blob[at::19] != sep * count for at, sep in _SEPARATORS):
        return False
    data = blob.encode("utf-8", "surrogatepass")  # a non-ASCII digit is more than one byte
    return len(data) == len(blob) and len(data.translate(None, b"0123456789")) == 5 * count


def sqlite_datetime_column(decimals_as_numbers: bool) -> Encode:
    """A SQLite column declared a date/time type: text in SQLite's ``datetime()`` form,
    ``2023-01-01 00:00:46`` with optional fractions, as ``"2023-01-01T00:00:46"`` (the form
    PostgreSQL's timestamps take); any other cell as the ``value`` kind writes it. The common
    column, every cell in that form, is checked over the column's join (by slices when whole
    seconds, else one regex) and rewritten with one ``replace``; a column with no space at all
    is plain text (a ``DATE`` column)."""
    by_value = value_column(decimals_as_numbers)
    get = value_encoders(decimals_as_numbers).get
    match = _SQLITE_DATETIME_CELL.fullmatch

    def cell(value: Any) -> str:
        if value.__class__ is str:
            if match(value):
                return '"' + value.replace(" ", "T") + '"'
            return encode_basestring(value)
        return (get(value.__class__) or fallback)(value)

    def column(col: Column) -> Encoded:
        try:
            blob = "\n".join(col)
        except TypeError:  # NULLs, numbers: cell by cell
            return False, list(map(cell, col))
        spaces = blob.count(" ")
        if not spaces:
            return by_value(col)
        # Each line of the form has one space: as many spaces as cells, one line per cell.
        if spaces == len(col) and (_whole_seconds(col) or _SQLITE_DATETIME_LINES.fullmatch(blob)):
            return True, blob.replace(" ", "T").split("\n")
        return False, list(map(cell, col))

    return column


_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_JSON_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
"""A decimal JSON spells as it is: at most ``ndjsonnumbers._WHOLE_DIGITS`` before the point."""
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def _parsed(pattern: re.Pattern[str], parse: Callable[[str], Any], encode: Callable) -> Encode:
    """Text that should be a number (a typed CSV column): as it is when it is JSON's spelling,
    else parsed and written as JSON spells it; empty is NULL; text that does not parse stays
    a string, as the file has it."""
    match = pattern.fullmatch

    def cell(text: str) -> str:
        if match(text):
            return text
        if not text:
            return "null"
        try:
            return encode(parse(text))
        except (ValueError, ArithmeticError):
            return encode_basestring(text)

    def column(col: Column) -> Encoded:
        return False, list(map(cell, col))

    return column


def _parsed_boolean(col: Column) -> Encoded:
    def cell(text: str) -> str:
        low = text.lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
        return "null" if not text else encode_basestring(text)

    return False, list(map(cell, col))


def _empty_is_null(each: Callable[[str], str]) -> Encode:
    """A typed CSV column kept as text (dates, decimals as strings): empty is NULL."""

    def column(col: Column) -> Encoded:
        return False, ["null" if not v else each(v) for v in col]

    return column


def csv_kinds(decimals_as_numbers: bool) -> dict[str, Encode]:
    """The column encoders of a CSV file's typed columns (``csv:*`` kinds): empty is NULL."""
    return {
        "csv:integer": _parsed(_JSON_INTEGER, int, int.__repr__),
        "csv:real": _parsed(_JSON_NUMBER, float, float_json),
        "csv:numeric": _parsed(_JSON_DECIMAL, Decimal, decimal_json(True))
        if decimals_as_numbers
        else _empty_is_null(encode_basestring),
        "csv:boolean": _parsed_boolean,
        "csv:date": _empty_is_null(encode_basestring),
        "csv:timestamp": _empty_is_null(iso_string),
    }
