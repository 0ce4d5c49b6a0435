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

The encoders of each kind are the neighbours: ``ndjsontext.py`` (text cells, and the check that
lets a column go out as it is), ``ndjsonnumbers.py`` (floats that are not finite, decimals),
``ndjsonvalues.py`` (Python values, by their type), ``ndjsondeclared.py`` (a CSV sidecar's
types, SQLite's date/time columns). Here: which encoder each kind takes, and the lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from .ndjsondeclared import csv_kinds, sqlite_datetime_column
from .ndjsonnumbers import numeric_text_column
from .ndjsontext import Encode, literal_column, text_column, timestamp_column
from .ndjsonvalues import value_column

__all__ = ["batch_encoder"]


def _kind_encoders(decimals_as_numbers: bool) -> dict[str, Encode]:
    """Each kind's column encoder (``sources.base.KINDS``); every one writes NULL (None) as null."""
    return {
        "value": value_column(decimals_as_numbers),
        "text": text_column,
        "integer": literal_column,
        "real": literal_column,
        "boolean": literal_column,
        "numeric": numeric_text_column(decimals_as_numbers),
        "date": text_column,
        "timestamp": timestamp_column,
        "bytes": text_column,
        **csv_kinds(decimals_as_numbers),
        "sqlite:timestamp": sqlite_datetime_column(decimals_as_numbers),
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
