"""A Query as parameterized SQL, for SQLite and PostgreSQL alike: values are parameters only.

Identifiers come from the table's catalogue (the request can only pick among them: ``spec.py``
refuses any other name) and are quoted; every value the request gave is a parameter. The two
dialects differ in three spellings only (placeholder, substring position, null-safe inequality).

Order and continuation: a sort is ``column, key`` in one direction, NULLs first when ascending
and last when descending (both databases are told explicitly, so they agree), and the key (a
rowid alias or a one-column primary key) breaks ties so the order is total. ``_after`` carries
the last row's sort value and key, and the next slice starts right after it with a condition
the database answers from its index or sort: the thousandth slice does not count the rows
before it, as ``OFFSET`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .keyset import NO_KEYSET
from .spec import Filter, Query, QueryError, convert_value

if TYPE_CHECKING:
    from ..sources.search import SearchIndex

__all__ = ["POSTGRES", "SQLITE", "Dialect", "KeyWalk", "clauses", "key_walk"]

NO_INDEX = "_search needs the table's full-text index; expected it only on a table that has one."


@dataclass(frozen=True)
class Dialect:
    placeholder: str
    position: str  # substring position function: instr(a, b) / strpos(a, b)
    distinct: str  # null-safe "not equal"
    percent: bool  # % in identifiers must be doubled (psycopg's placeholders)

    def quote(self, name: str) -> str:
        quoted = '"' + name.replace('"', '""') + '"'
        return quoted.replace("%", "%%") if self.percent else quoted


SQLITE = Dialect("?", "instr", "IS NOT", percent=False)
POSTGRES = Dialect("%s", "strpos", "IS DISTINCT FROM", percent=True)

_COMPARE = {"exact": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _condition(d: Dialect, f: Filter, params: list[Any], col: Callable[[str], str]) -> str:
    column, p = col(f.column), d.placeholder
    if f.lookup in _COMPARE:
        params.append(f.value)
        return f"{column} {_COMPARE[f.lookup]} {p}"
    if f.lookup == "not":
        params.append(f.value)
        return f"{column} {d.distinct} {p}"
    if f.lookup in ("contains", "startswith"):
        params.append(f.value)
        test = "> 0" if f.lookup == "contains" else "= 1"
        return f"{d.position}(CAST({column} AS TEXT), {p}) {test}"
    if f.lookup == "in":
        params.extend(f.value)
        return f"{column} IN ({', '.join([p] * len(f.value))})"
    if f.lookup == "isnull":
        return f"{column} IS {'' if f.value else 'NOT '}NULL"
    raise AssertionError(f.lookup)


def _keyset(d: Dialect, q: Query, key: str, params: list[Any], col: Callable[[str], str]) -> str:
    assert q.after is not None
    p, k = d.placeholder, col(key)
    key_type = q.types.get(key, "text")
    if q.sort is None:
        if len(q.after) != 1 or q.after[0] is None:
            raise QueryError(
                "_after does not fit this page; expected the one in a page's 'next rows' link."
            )
        params.append(convert_value(key, key_type, q.after[0]))
        return f"{k} > {p}"
    if len(q.after) != 2 or q.after[1] is None:
        raise QueryError(
            "_after does not fit this sort; expected the one in a page's 'next rows' link."
        )
    last, last_key = q.after
    s, more = col(q.sort), (">" if not q.descending else "<")
    typed_key = convert_value(key, key_type, last_key)
    if q.sort == key:  # the key holds no NULL and no tie: one range of its index
        params.append(typed_key)
        return f"{k} {more} {p}"
    if last is None:  # NULLs come first ascending, last descending
        params.append(typed_key)
        rest = "" if q.descending else f" OR {s} IS NOT NULL"
        return f"(({s} IS NULL AND {k} {more} {p}){rest})"
    value = convert_value(q.sort, q.types.get(q.sort, "text"), last)
    params.extend([value, value, typed_key])
    nulls = f" OR {s} IS NULL" if q.descending else ""
    return f"({s} {more} {p} OR ({s} = {p} AND {k} {more} {p}){nulls})"


def clauses(
    d: Dialect,
    q: Query,
    key: str | None,
    table: Sequence[str] = (),
    search: SearchIndex | None = None,
) -> tuple[str, list[Any]]:
    """`` WHERE … ORDER BY …`` (either may be absent) and its parameters, for a source that
    writes its own select list; with ``q.search``, the table's full-text index ``search``
    joined before them (``sources/search.py``).

    Columns are qualified with ``table`` (its name's parts): in ORDER BY a bare name would
    mean the select list's column of that name first, and a source may select a column as
    an expression under its own name (PostgreSQL's text, ``sources/pgtext.py``), which would
    then sort as text; and a search's FTS5 table has columns of the same names.
    """
    where, params, order = _parts(d, q, key, table, search)
    return where + order, params


@dataclass(frozen=True)
class KeyWalk:
    """A search in its key's order, as the SQL a source needs to look at the next rows of that
    order before it plans the query (``sources/pgplan.py``)."""

    key: str  # the key column, qualified and quoted
    where: str  # `` WHERE …``: every condition of the query (the search, filters, ``_after``)
    window: str  # `` [WHERE <_after>] ORDER BY <key>``: the table's rows the query walks past
    params: tuple[Any, ...]  # ``where``'s, then ``window``'s


def key_walk(
    d: Dialect, q: Query, key: str | None, table: Sequence[str], search: SearchIndex | None
) -> KeyWalk | None:
    """``q``'s search as a ``KeyWalk`` when its rows come in key order (no ``_sort``) and the
    index does not hand them in that order itself (FTS5 does); None otherwise. A ``_sort``, on
    the key too, is left to the planner."""
    if q.search is None or search is None or search.key is not None or key is None:
        return None
    if q.sort is not None:
        return None
    where, params, order = _parts(d, q, key, table, search)
    after, after_params, _ = _parts(d, replace(q, filters=(), search=None), key, table, None)
    return KeyWalk(
        key="".join(d.quote(part) + "." for part in table) + d.quote(key),
        where=where,
        window=after + order,
        params=(*params, *after_params),
    )


def _parts(
    d: Dialect, q: Query, key: str | None, table: Sequence[str], search: SearchIndex | None
) -> tuple[str, list[Any], str]:
    """``clauses``' `` WHERE …`` (after the index's join), its parameters, `` ORDER BY …``."""
    prefix = "".join(d.quote(part) + "." for part in table)
    if q.search is not None and search is None:
        raise QueryError(NO_INDEX)
    index = search if q.search is not None else None
    # Searching, the key is read from the index where it has it (SQLite's FTS5 rowid): the
    # index then hands its matches in key order, and an _after starts inside it.
    index_key = index.key if index is not None else None

    def col(name: str) -> str:
        if name == key and index_key is not None:
            return index_key
        return prefix + d.quote(name)

    params: list[Any] = []
    where = []
    if index is not None:
        params.append(q.search)
        where.append(index.condition)
    where += [_condition(d, f, params, col) for f in q.filters]
    if q.after is not None:
        if key is None:
            raise QueryError(NO_KEYSET)
        where.append(_keyset(d, q, key, params, col))
    text = index.join if index is not None else ""
    if where:
        text += " WHERE " + " AND ".join(where)
    order = []
    if q.sort is not None and q.sort == key:
        # The key (an INTEGER PRIMARY KEY, a one-column primary key) holds no NULL: its order
        # is its index's, which an explicit NULLS FIRST would not be on PostgreSQL (ASC is
        # NULLS LAST there), so `_sort=id` sorted the whole table before its first row.
        order.append(f"{col(key)} {'DESC' if q.descending else 'ASC'}")
    elif q.sort is not None:
        direction = "DESC NULLS LAST" if q.descending else "ASC NULLS FIRST"
        order.append(f"{col(q.sort)} {direction}")
        if key is not None:
            order.append(f"{col(key)} {'DESC' if q.descending else 'ASC'}")
    elif key is not None:
        # In key order, so that the page's "next rows" link (_after the last key) continues
        # it exactly: an index chosen for a filter or a covering index for the chosen columns
        # would otherwise hand rows in its own order.
        order.append(col(key))
    return text, params, " ORDER BY " + ", ".join(order) if order else ""
