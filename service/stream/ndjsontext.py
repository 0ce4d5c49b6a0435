"""Typed NDJSON of text cells: strings as JSON strings, fast when nothing needs escaping.

Most cells reach NDJSON as text: PostgreSQL's server-written cells, a CSV file's fields, the
strings among SQLite's values. JSON writes a string as it is between quotes unless it holds a
quote, a backslash or a control character, and most columns hold none: one ``join`` of the
column and one ``bytes.translate`` tell, and such a column goes out as it is, its quotes written
by the line around it (``ndjson.py``); otherwise each cell goes through the json module's C
encoder, each distinct value once when a column has few (``cells.once_per_distinct``).

Also here, the text kinds that are already JSON or nearly (``sources.base.KINDS``): a source's
numbers and booleans (``literal_column``) and timestamps with a space for the ``T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C function
from typing import Any

from ..sources.cells import once_per_distinct

__all__ = [
    "QUOTED",
    "Column",
    "Encode",
    "Encoded",
    "iso_string",
    "literal_column",
    "string_cells",
    "text_column",
    "timestamp_column",
]

Column = Sequence[Any]
Encoded = tuple[bool, Sequence[str]]
"""A column's JSON: (whether the cells still need their quotes, the cells)."""
Encode = Callable[[Column], Encoded]

QUOTED = '"%s"'.__mod__
"""Text that needs no escaping, between JSON's quotes."""

_ESCAPED = bytes(range(0x20)) + b'"\\'
"""The characters JSON escapes (``encode_basestring``); in UTF-8 none is part of another."""


def _plain(blob: str) -> bool:
    """Whether JSON would write ``blob`` as it is: no quote, backslash or control character.
    ``bytes.translate`` deletes them from a column's join at under 1 ns a byte (a regex or the
    encoder itself took 5-10 ns a character)."""
    data = blob.encode("utf-8", "surrogatepass")
    return len(data.translate(None, _ESCAPED)) == len(data)


def string_cells(col: Column) -> list[str]:
    """Each cell as a JSON string, NULL (None) as null; each distinct value once when few."""
    encoded = once_per_distinct(lambda v: "null" if v is None else encode_basestring(v), col)
    if encoded is not None:
        return encoded
    if None in col:
        return ["null" if v is None else encode_basestring(v) for v in col]
    return list(map(encode_basestring, col))


def text_column(col: Column) -> Encoded:
    """Strings (NULL as None): a column with nothing to escape goes out as it is, its quotes
    written by the line around it; otherwise each cell through the json module's C encoder."""
    try:
        blob = "".join(col)
    except TypeError:  # a NULL
        return False, string_cells(col)
    if _plain(blob):
        return True, col
    return False, string_cells(col)


def timestamp_column(col: Column) -> Encoded:
    """``2024-05-01 12:00:00`` (the cells' spelling) as ``"2024-05-01T12:00:00"``: the whole
    column in one ``replace`` when every cell has exactly one space (no ``BC`` year)."""
    try:
        blob = "".join(col)
    except TypeError:
        return False, ["null" if v is None else iso_string(v) for v in col]
    if blob.count(" ") == len(col) and " BC" not in blob and _plain(blob):
        return True, "\n".join(col).replace(" ", "T").split("\n")
    return False, list(map(iso_string, col))


def iso_string(text: str) -> str:
    """A date/time's text with a space (``2024-05-01 12:00:00``) as a JSON string with a ``T``."""
    return encode_basestring(text.replace(" ", "T", 1))


def literal_column(col: Column) -> Encoded:
    """Text that is already JSON (a number, ``true``/``false``): as it is, NULL as null."""
    if None in col:
        return False, ["null" if v is None else v for v in col]
    return False, col
