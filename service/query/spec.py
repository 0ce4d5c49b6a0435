"""What a URL asks of a table: filters, one sort, chosen columns, a keyset continuation.

``parse_query`` reads the query string against the table's known columns and their types and
returns a ``Query`` whose values are already converted (an integer column's value is an
``int``), or raises ``QueryError`` with a message that says what was wrong and what is allowed.
Nothing here knows SQL: ``sql.py`` turns a Query into parameterized SQL with quoted identifiers
for the databases, ``rows.py`` applies it in Python to the sources that have no SQL.

The grammar, the same for every source and format::

    ?column=value               exact
    ?column__LOOKUP=value       gt gte lt lte not contains startswith in isnull
    ?_sort=column / ?_sort_desc=column
    ?_col=a&_col=b / ?_cols=a,b
    ?_after=TOKEN               the "next rows" link of a page cut by limit (keyset.py)
    ?_search=words              the table's full-text index (sources/search.py), if it has one

Several filters combine with AND; a parameter not in this grammar is a 400, never ignored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "LOOKUPS",
    "RESERVED",
    "Filter",
    "Query",
    "QueryError",
    "convert_value",
    "parse_query",
]

LOOKUPS = ("exact", "gt", "gte", "lt", "lte", "not", "contains", "startswith", "in", "isnull")
RESERVED = frozenset(
    {
        "limit",
        "offset",
        "format",
        "null",
        "decimals",
        "fragment",
        "_sort",
        "_sort_desc",
        "_col",
        "_cols",
        "_after",
        "_search",
        "_facet",
    }
)
"""Options, not filters: a column of one of these names is filtered as ``null__exact=``.
``_facet`` is the page's, for its script (``views/facets.py`` counts): the rows ignore it."""
TYPES = ("integer", "real", "numeric", "boolean", "timestamp", "date", "text")
"""Column types as the query sees them; a source maps its own types onto these."""

MAX_FILTERS = 32
MAX_VALUE_CHARS = 1000
MAX_IN_VALUES = 100
_INTEGER = re.compile(r"[-+]?[0-9]{1,19}")
_REAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_INT64 = (-(2**63), 2**63 - 1)
_TRUE = {"1", "true", "t", "yes", "on"}
_FALSE = {"0", "false", "f", "no", "off"}


class QueryError(ValueError):
    """The query string cannot be served; the message is the 400's text."""


@dataclass(frozen=True)
class Filter:
    column: str
    lookup: str
    value: Any  # converted to the column's type; a tuple for ``in``, a bool for ``isnull``
    text: str  # as given, for the page and the log

    @property
    def param(self) -> str:
        """The query parameter that asked for this filter."""
        return self.column if self.lookup == "exact" else f"{self.column}__{self.lookup}"


@dataclass(frozen=True)
class Query:
    filters: tuple[Filter, ...] = ()
    sort: str | None = None
    descending: bool = False
    columns: tuple[str, ...] | None = None  # None: all, in the table's order
    after: tuple[str | None, ...] | None = None  # the key of the last row already seen
    # ``_after`` as given: opened into ``after`` by keyset.py once the table's key is known
    after_token: str | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    # ``_search``'s words as given, for the table's full-text index; None: no search
    search: str | None = None

    @property
    def is_plain(self) -> bool:
        return not (
            self.filters
            or self.sort
            or self.columns
            or self.after
            or self.after_token
            or self.search is not None
        )


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def convert_value(column: str, kind: str, text: str) -> Any:
    """``text`` as a value of the column's ``kind``; QueryError saying what the column takes."""
    if "\x00" in text:
        raise QueryError(
            f"the value for {column!r} contains a NUL character; expected text without one."
        )
    if len(text) > MAX_VALUE_CHARS:
        raise QueryError(
            f"the value for {column!r} is too long; expected at most {MAX_VALUE_CHARS} characters."
        )
    if kind == "integer":
        if _INTEGER.fullmatch(text) and _INT64[0] <= int(text) <= _INT64[1]:
            return int(text)
        raise QueryError(
            f"{column} is an integer column; {_shown(text)} is not one: expected a whole "
            f"number from {_INT64[0]} to {_INT64[1]}."
        )
    if kind == "real":
        if _REAL.fullmatch(text) and math.isfinite(float(text)):
            return float(text)
        raise QueryError(
            f"{column} is a number column; expected a finite number, not {_shown(text)}."
        )
    if kind == "numeric":
        try:
            value = Decimal(text) if _REAL.fullmatch(text) else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            raise QueryError(
                f"{column} is a decimal column; expected a number, not {_shown(text)}."
            )
        return value
    if kind == "boolean":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise QueryError(
            f"{column} is a true/false column; expected true or false, not {_shown(text)}."
        )
    if kind in ("timestamp", "date"):
        try:
            return (dt.date if kind == "date" else dt.datetime).fromisoformat(text)
        except ValueError:
            raise QueryError(
                f"{column} is a {kind} column; expected an ISO 8601 {kind} (e.g. 2024-03-01 "
                f"or 2024-03-01T12:00:00), not {_shown(text)}."
            ) from None
    return text


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise QueryError(f"{name} is given {len(values)} times; give it once.")
    return values[0] if values else None


def _known(column: str, known: Sequence[str], what: str) -> str:
    if column not in known:
        raise QueryError(
            f"{what} names the column {_shown(column)}, which this table does not have; "
            f"expected one of the columns: {', '.join(known)}."
        )
    return column


def _filter(key: str, text: str, known: Sequence[str], types: Mapping[str, str]) -> Filter:
    if key in known:
        column, lookup = key, "exact"
    else:
        column, sep, lookup = key.rpartition("__")
        if not sep or column not in known:
            raise QueryError(
                f"{_shown(key)} is neither a column nor COLUMN__LOOKUP of this table; expected "
                f"a column ({', '.join(known)}), COLUMN__LOOKUP with a lookup of "
                f"{', '.join(LOOKUPS)}, or an option ({', '.join(sorted(RESERVED))})."
            )
        if lookup not in LOOKUPS:
            raise QueryError(
                f"{_shown(lookup)} in {_shown(key)} is not a lookup; expected one of "
                f"{', '.join(LOOKUPS)}."
            )
    kind = types.get(column, "text")
    value: Any
    if lookup == "isnull":
        if text.lower() not in _TRUE | _FALSE:
            raise QueryError(f"{key}: expected 1 (is null) or 0 (is not null), not {_shown(text)}.")
        value = text.lower() in _TRUE
    elif lookup == "in":
        parts = text.split(",")
        if len(parts) > MAX_IN_VALUES:
            raise QueryError(f"{key} lists {len(parts)} values; expected at most {MAX_IN_VALUES}.")
        value = tuple(convert_value(column, kind, part) for part in parts)
    elif lookup in ("contains", "startswith"):
        value = convert_value(column, "text", text)  # a text search whatever the column's type
    else:
        value = convert_value(column, kind, text)
    return Filter(column, lookup, value, text)


def parse_query(
    args: Mapping[str, Sequence[str]],
    columns: Sequence[str],
    types: Mapping[str, str],
) -> Query:
    """The Query asked for by ``args`` (name → all its values) on a table with ``columns``."""
    known = list(columns)
    filters = []
    for key, values in args.items():
        if key in RESERVED:
            continue
        if key.startswith("_"):
            raise QueryError(
                f"{_shown(key)} is not an option; expected one of {', '.join(sorted(RESERVED))}."
            )
        filters.extend(_filter(key, text, known, types) for text in values)
    if len(filters) > MAX_FILTERS:
        raise QueryError(f"{len(filters)} filters; expected at most {MAX_FILTERS}.")
    ascending, descending = _one(args, "_sort"), _one(args, "_sort_desc")
    if ascending is not None and descending is not None:
        raise QueryError("give _sort or _sort_desc, not both; expected one sort column.")
    sort = ascending if ascending is not None else descending
    if sort is not None:
        _known(sort, known, "_sort" if ascending is not None else "_sort_desc")
    chosen: list[str] = []
    for value in args.get("_col") or []:
        chosen.append(value)
    for value in args.get("_cols") or []:
        chosen.extend(part for part in value.split(",") if part)
    for column in chosen:
        _known(column, known, "_col")
    if len(set(chosen)) != len(chosen):
        raise QueryError("a column is chosen twice in _col/_cols; expected each column once.")
    after_token = _one(args, "_after")
    return Query(
        search=_search(args),
        filters=tuple(filters),
        sort=sort,
        descending=descending is not None,
        columns=tuple(chosen) or None,
        after_token=after_token,
        types=dict(types),
    )


def _search(args: Mapping[str, Sequence[str]]) -> str | None:
    """``_search``'s words; None when absent or blank (a search box sent empty)."""
    text = _one(args, "_search")
    if text is None or not text.strip():
        return None
    if "\x00" in text or len(text) > MAX_VALUE_CHARS:
        raise QueryError(
            f"_search is too long or contains a NUL character; expected at most "
            f"{MAX_VALUE_CHARS} characters of words."
        )
    return text
