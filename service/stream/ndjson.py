"""Typed NDJSON: numbers as numbers, NULL as null, one encoder per stream, a column at a time.

A program reading NDJSON wants ``{"id":1,"total":530.99,"note":null}``, not every value as a
string to guess and re-parse. The typing follows what the source knows (``sources.base``
``KINDS``): SQLite's cells are typed by their value (its types are dynamic), PostgreSQL's by
their column's type, the synthetic table's by its known types, a CSV file's are text unless a
sidecar file gives them types (``sources/csvtypes.py``). The JSON spellings, for every source:

- integers and floats are JSON numbers; a float JSON cannot carry is the string ``"NaN"``,
  ``"Infinity"`` or ``"-Infinity"`` (the spellings of JavaScript and PostgreSQL);
- NULL is ``null``, booleans ``true``/``false``;
- decimals (PostgreSQL ``numeric``, a CSV sidecar's ``decimal``) are numbers written as their
  exact decimal text, ``530.99``, so a total is a number whichever source holds it (SQLite's
  ``REAL`` is one) and the JSON text loses no digit (``json.loads(parse_float=Decimal)`` reads
  it exactly); ``NaN``/``±Infinity`` are the float strings above. ``decimals=string`` (query)
  or ``TABLESTREAM_NDJSON_DECIMALS=string`` writes ``"530.99"``, for readers whose floats
  would round and that cannot be told to parse decimals;
- dates and times are ISO 8601 strings with a ``T`` (``2024-05-01T12:00:00+02:00``): the form
  JavaScript's ``Date``, Python's ``fromisoformat`` and pandas all parse. SQLite has no date
  type: in a column declared ``DATE``/``DATETIME``/``TIMESTAMP`` text in SQLite's own
  ``datetime()`` form, ``2023-01-01 00:00:46``, gets its ``T``; other text stays as stored;
- bytes are ``"\\x"`` and lowercase hex (``"\\\\x00ff"`` in JSON), the text the page and CSV show
  and PostgreSQL's own ``bytea`` output: no second encoding to learn, and PostgreSQL writes it;
- JSON values (PostgreSQL ``json``/``jsonb``) and arrays are embedded as JSON; anything else
  (``interval``, ``money``, ...) is a string, the text the page shows.

Speed: the encoder is built once per stream, from the column names and kinds. Each batch is
turned into JSON fragments a column at a time (one ``map`` of a C function over a column of one
type; a PostgreSQL integer column is already its JSON text; a text column with nothing to
escape, checked in one ``join``, is its own JSON between quotes), and the lines are one
``join`` of the cells and the keys between them: no dict and no encoder call per row.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C function
from math import isfinite
from typing import Any

from ..sources.cells import format_value, once_per_distinct

__all__ = ["batch_encoder"]

Column = Sequence[Any]
Encoded = tuple[bool, Sequence[str]]
"""A column's JSON: (whether the cells still need their quotes, the cells)."""
Encode = Callable[[Column], Encoded]

_NAN = '"NaN"'
_NOT_FINITE = {"nan": _NAN, "inf": '"Infinity"', "-inf": '"-Infinity"'}
_NUMERIC_NOT_FINITE = {"NaN": _NAN, "Infinity": '"Infinity"', "-Infinity": '"-Infinity"'}
_QUOTED = '"%s"'.__mod__


def _float(value: float) -> str:
    text = float.__repr__(value)
    return _NOT_FINITE.get(text, text)


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


_WHOLE_DIGITS = 18
"""Decimals with more digits before the point are written in scientific notation: readers
that parse a number's integer part into 64 bits (pandas' ujson: "Value is too big!") fail the
whole file on ``1000000000000000000000``, and read ``1.000000000000000000000e+21`` (10**18 <
2**63, so 18 digits always fit)."""


def _long_decimal(text: str) -> str:
    """A decimal's JSON number (plain text, NaN/Infinity already strings) with every digit:
    as it is, or, past ``_WHOLE_DIGITS`` before the point, as ``Decimal``'s ``e`` format."""
    point = text.find(".")
    whole = (point if point >= 0 else len(text)) - text.startswith("-")
    if whole <= _WHOLE_DIGITS or text.startswith('"'):
        return text
    return format(Decimal(text), "e")


def _decimal_numbers(cells: list[str]) -> list[str]:
    """A column of decimals' JSON numbers, a long one made safe (one ``max`` when none is)."""
    if cells and max(map(len, cells)) > _WHOLE_DIGITS + 1:
        return list(map(_long_decimal, cells))
    return cells


def _decimal(as_number: bool) -> Callable[[Decimal], str]:
    if not as_number:
        return lambda value: _QUOTED(format(value, "f"))

    def number(value: Decimal) -> str:
        text = format(value, "f")
        return _long_decimal(_NUMERIC_NOT_FINITE.get(text, text))

    return number


def _value_encoders(decimals_as_numbers: bool) -> dict[type, Callable[[Any], str]]:
    return {
        str: encode_basestring,
        int: int.__repr__,
        bool: lambda v: "true" if v else "false",
        float: _float,
        type(None): lambda v: "null",
        Decimal: _decimal(decimals_as_numbers),
        dt.datetime: lambda v: _QUOTED(v.isoformat()),
        dt.date: lambda v: _QUOTED(v.isoformat()),
        dt.time: lambda v: _QUOTED(v.isoformat()),
        bytes: _bytes,
        bytearray: _bytes,
        memoryview: _bytes,
        dict: _embedded,
        list: _embedded,
    }


_ESCAPED = bytes(range(0x20)) + b'"\\'
"""The characters JSON escapes (``encode_basestring``); in UTF-8 none is part of another."""


def _plain(blob: str) -> bool:
    """Whether JSON would write ``blob`` as it is: no quote, backslash or control character.
    ``bytes.translate`` deletes them from a column's join at under 1 ns a byte (a regex or the
    encoder itself took 5-10 ns a character)."""
    data = blob.encode("utf-8", "surrogatepass")
    return len(data.translate(None, _ESCAPED)) == len(data)


def _strings(col: Column) -> list[str]:
    """Each cell as a JSON string, NULL (None) as null; each distinct value once when few."""
    encoded = once_per_distinct(lambda v: "null" if v is None else encode_basestring(v), col)
    if encoded is not None:
        return encoded
    if None in col:
        return ["null" if v is None else encode_basestring(v) for v in col]
    return list(map(encode_basestring, col))


def _text(col: Column) -> Encoded:
    """Strings (NULL as None): a column with nothing to escape goes out as it is, its quotes
    written by the line around it; otherwise each cell through the json module's C encoder."""
    try:
        blob = "".join(col)
    except TypeError:  # a NULL
        return False, _strings(col)
    if _plain(blob):
        return True, col
    return False, _strings(col)


def _timestamps(col: Column) -> Encoded:
    """``2024-05-01 12:00:00`` (the cells' spelling) as ``"2024-05-01T12:00:00"``: the whole
    column in one ``replace`` when every cell has exactly one space (no ``BC`` year)."""
    try:
        blob = "".join(col)
    except TypeError:
        return False, ["null" if v is None else _iso(v) for v in col]
    if blob.count(" ") == len(col) and " BC" not in blob and _plain(blob):
        return True, "\n".join(col).replace(" ", "T").split("\n")
    return False, list(map(_iso, col))


def _iso(text: str) -> str:
    return encode_basestring(text.replace(" ", "T", 1))


def _literal(col: Column) -> Encoded:
    """Text that is already JSON (a number, ``true``/``false``): as it is, NULL as null."""
    if None in col:
        return False, ["null" if v is None else v for v in col]
    return False, col


def _numeric_text(as_number: bool) -> Encode:
    if as_number:

        def numbers(col: Column) -> Encoded:
            if None in col:
                cells = ["null" if v is None else _NUMERIC_NOT_FINITE.get(v, v) for v in col]
                return False, _decimal_numbers(cells)
            return False, _decimal_numbers(list(map(_NUMERIC_NOT_FINITE.get, col, col)))

        return numbers
    return _text  # decimal text never needs escaping: quoted as it is


def _fallback(value: Any) -> str:
    """A value of a type with no JSON spelling here: the page's text, as a string."""
    return encode_basestring(format_value(value))


def _by_value(decimals_as_numbers: bool) -> Encode:
    """Cells of any Python type (SQLite, psycopg): one ``map`` when a column is of one type."""
    get = _value_encoders(decimals_as_numbers).get

    def column(col: Column) -> Encoded:
        kinds = set(map(type, col))
        if kinds == {str, type(None)}:  # a text column with NULLs
            return False, _strings(col)
        if len(kinds) == 1:
            (kind,) = kinds
            if kind is str:
                return _text(col)
            if kind is float and not all(map(isfinite, col)):
                return False, list(map(_float, col))
            if kind is float:
                return False, list(map(float.__repr__, col))
            if kind is type(None):
                return False, ["null"] * len(col)
            return False, list(map(get(kind) or _fallback, col))
        return False, [(get(v.__class__) or _fallback)(v) for v in col]

    return column


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


def _sqlite_datetimes(decimals_as_numbers: bool) -> Encode:
    """A SQLite column declared a date/time type: text in SQLite's ``datetime()`` form,
    ``2023-01-01 00:00:46`` with optional fractions, as ``"2023-01-01T00:00:46"`` (the form
    PostgreSQL's timestamps take); any other cell as the ``value`` kind writes it. The common
    column, every cell in that form, is checked over the column's join (by slices when whole
    seconds, else one regex) and rewritten with one ``replace``; a column with no space at all
    is plain text (a ``DATE`` column)."""
    by_value = _by_value(decimals_as_numbers)
    get = _value_encoders(decimals_as_numbers).get
    match = _SQLITE_DATETIME_CELL.fullmatch

    def cell(value: Any) -> str:
        if value.__class__ is str:
            if match(value):
                return '"' + value.replace(" ", "T") + '"'
            return encode_basestring(value)
        return (get(value.__class__) or _fallback)(value)

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
"""A decimal JSON spells as it is: at most ``_WHOLE_DIGITS`` before the point."""
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


def _kind_encoders(decimals_as_numbers: bool) -> dict[str, Encode]:
    """Each kind's column encoder (``sources.base.KINDS``); every one writes NULL (None) as null."""
    return {
        "value": _by_value(decimals_as_numbers),
        "text": _text,
        "integer": _literal,
        "real": _literal,
        "boolean": _literal,
        "numeric": _numeric_text(decimals_as_numbers),
        "date": _text,
        "timestamp": _timestamps,
        "bytes": _text,
        "csv:integer": _parsed(_JSON_INTEGER, int, int.__repr__),
        "csv:real": _parsed(_JSON_NUMBER, float, _float),
        "csv:numeric": _parsed(_JSON_DECIMAL, Decimal, _decimal(True))
        if decimals_as_numbers
        else _empty_is_null(encode_basestring),
        "csv:boolean": _parsed_boolean,
        "csv:date": _empty_is_null(encode_basestring),
        "csv:timestamp": _empty_is_null(_iso),
        "sqlite:timestamp": _sqlite_datetimes(decimals_as_numbers),
    }


def batch_encoder(
    columns: Sequence[str], kinds: Sequence[str], decimals_as_numbers: bool = True
) -> Callable[[Sequence[Sequence[Any]]], str]:
    """A function from a batch of rows to their NDJSON lines, for these columns and kinds.

    Keys are written by the json module once. A batch's lines are one ``join`` of a list
    whose slots are filled a column at a time by slice assignment (``out[i::stride] = cells``,
    a C copy): the columns' cells and the constant text between them (``,"name":`` and, around
    a column whose cells go out as they are, its quotes).
    """
    encoders = _kind_encoders(decimals_as_numbers)
    unknown = sorted(set(kinds) - set(encoders))
    if unknown:
        raise ValueError(f"no NDJSON encoding for kinds {unknown}; expected {sorted(encoders)}")
    plan = [encoders[kind] for kind in kinds]
    keys = [json.dumps(name, ensure_ascii=False) + ":" for name in columns]
    keys = ["{" + keys[0], *("," + key for key in keys[1:])] if keys else []
    width = len(plan)
    stride = 2 * width + 1

    def encode(rows: Sequence[Sequence[Any]]) -> str:
        count = len(rows)
        if not count:
            return ""
        if width == 0:
            return "{}\n" * count
        out: list[str] = [""] * (count * stride)
        before = ""
        slot = 0
        for each, key, col in zip(plan, keys, zip(*rows, strict=True), strict=True):
            quoted, cells = each(col)
            out[slot::stride] = [before + key + ('"' if quoted else "")] * count
            out[slot + 1 :: stride] = cells
            before = '"' if quoted else ""
            slot += 2
        out[slot::stride] = [before + "}\n"] * count
        return "".join(out)

    return encode
