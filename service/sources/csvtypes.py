"""A CSV file's column types, from a sidecar beside it: ``orders.csv-metadata.json``.

A CSV file says nothing about types, so its columns are text (strings in NDJSON) unless a
sidecar file names them. The sidecar is the W3C "CSV on the Web" metadata file, found where
that standard looks first (the file's name + ``-metadata.json``), of which only this is read:

    {"tableSchema": {"columns": [
        {"name": "id", "datatype": "integer"},
        {"name": "total", "datatype": "decimal"}
    ]}}

Datatypes: ``string``, ``integer``, ``number``/``double``/``float``, ``decimal``, ``boolean``,
``date``, ``datetime``/``dateTime``. Columns not named stay text. A sidecar that names a column
the header does not have, or a datatype not in the list, stops start-up with a message saying
so. In a typed column an empty cell is NULL, and a cell that is not of the type is sent as the
text the file has.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import SourceError

__all__ = ["DATATYPES", "QUERY_TYPES", "sidecar_path", "sidecar_types"]

DATATYPES = {
    "string": "text",
    "integer": "csv:integer",
    "number": "csv:real",
    "double": "csv:real",
    "float": "csv:real",
    "decimal": "csv:numeric",
    "boolean": "csv:boolean",
    "date": "csv:date",
    "datetime": "csv:timestamp",
    "dateTime": "csv:timestamp",
}
"""CSVW datatype → the column's kind (``base.KINDS``)."""
QUERY_TYPES = {"integer": "integer", "number": "real", "double": "real", "float": "real"}
QUERY_TYPES["decimal"] = "numeric"
"""How a filter compares a typed column (``query/rows.py`` compares numbers as numbers; the
other types as the text the file has, as before)."""


def sidecar_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + "-metadata.json")


def sidecar_types(table: str, csv_path: Path, header: list[str]) -> dict[str, str]:
    """Column → CSVW datatype for the columns the sidecar names; empty when there is none."""
    path = sidecar_path(csv_path)
    if not path.is_file():
        return {}
    where = f"CSV table {table!r}: {str(path)!r}"
    try:
        columns = json.loads(path.read_text(encoding="utf-8"))["tableSchema"]["columns"]
        named = {c["name"]: c.get("datatype", "string") for c in columns}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            f'{where} is not a sidecar of column types ({exc!r}); expected {{"tableSchema": '
            '{"columns": [{"name": COLUMN, "datatype": TYPE}, ...]}}'
        ) from exc
    unknown = sorted(set(named) - set(header))
    if unknown:
        raise SourceError(f"{where} names columns the file does not have: {', '.join(unknown)}")
    bad = sorted(str(t) for t in named.values() if not isinstance(t, str) or t not in DATATYPES)
    if bad:
        raise SourceError(
            f"{where}: datatype {', '.join(bad)} is not one this service reads; expected one "
            f"of {', '.join(DATATYPES)}"
        )
    return named
