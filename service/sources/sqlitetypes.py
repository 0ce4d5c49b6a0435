"""What a SQLite column's declared type says: the type a query compares it as, and whether it
holds dates and times.

SQLite has no column types of its own, only its values' (any column may hold any value); the
declared type, the word in ``CREATE TABLE``, is the only hint a file gives. It is read once per
table, from ``PRAGMA table_info`` (``sqlite.py``), never per cell:

- ``affinity``: SQLite's own rules, giving the type ``query/`` converts a filter's value to;
- ``is_datetime_type``: a column declared ``DATE``, ``DATETIME`` or ``TIMESTAMP`` (the first
  word of its declared type, any case) is of kind ``sqlite:timestamp``: its cells are still the
  values SQLite stores, and typed NDJSON writes text in SQLite's ``datetime()`` form with a
  ``T``, as PostgreSQL's timestamps are written (``stream/ndjson.py``).
"""

from __future__ import annotations

import re

__all__ = ["affinity", "is_datetime_type"]

_DATETIME_TYPES = {"DATE", "DATETIME", "TIMESTAMP"}
_FIRST_WORD = re.compile(r"\s*([A-Za-z_]+)")


def is_datetime_type(declared: str) -> bool:
    """Whether a column's declared type says it holds dates or times: its first word is
    ``DATE``, ``DATETIME`` or ``TIMESTAMP`` in any case (``datetime`` as Django and Rails
    declare it, ``TIMESTAMP(3)``, ``timestamp with time zone``); ``TEXT``, ``MYDATE`` or
    ``DATETIMEOFFSET`` are not. SQLite has no date type: the declared type is the only word
    a file gives on what its text means."""
    first = _FIRST_WORD.match(declared)
    return first is not None and first.group(1).upper() in _DATETIME_TYPES


def affinity(declared: str) -> str:
    """SQLite's type affinity rules (https://sqlite.org/datatype3.html §3.1) as query types."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")) or not upper:
        return "text"  # no declared type is BLOB affinity: compared as given, i.e. as text
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "text"  # NUMERIC affinity (DATE, DECIMAL, ...): SQLite converts the text itself
