"""What a caller may do: the tables it may read, the columns hidden from it, its scopes.

A token and a proxy group are both a ``Grant`` (read from the tokens file or the policy file); a
``Caller`` is who a request turned out to be, with every grant that applies to it (one for a
token, one per group and one for the user behind a proxy). Permissions add up: a table is
readable when any grant names it, a column is hidden only when every grant that reads the table
hides it, a scope is held when any grant holds it.

Table patterns are names or shell-style globs matched case-sensitively (``orders``,
``reports.*``, ``*``), the way table names are matched everywhere else in the service. A hide
entry is ``TABLE.COLUMN`` with the table's served name (a PostgreSQL table is served by its bare
name; names may contain dots) and must name a column that exists (``ServedColumns``): a hide
matching nothing would silently show the column it was written to hide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["SCOPES", "Caller", "Grant", "GrantError", "ServedColumns", "grant_from"]

SCOPES = frozenset({"metrics"})
"""Scopes beyond reading tables: ``metrics`` reads /metrics and /readyz's reasons."""

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
"""A token's or user's name: it goes into log lines, so no spaces, quotes or control bytes."""


class GrantError(ValueError):
    """A grant in a tokens or policy file is malformed; the message says where and why."""


@dataclass(frozen=True)
class Grant:
    """Tables (names or globs), columns hidden from them (``table.column``) and scopes."""

    tables: tuple[str, ...] = ()
    hide: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()

    def may_read(self, table: str) -> bool:
        return any(fnmatchcase(table, pattern) for pattern in self.tables)

    def hidden(self, table: str) -> frozenset[str]:
        prefix = table + "."
        return frozenset(h[len(prefix) :] for h in self.hide if h.startswith(prefix))


@dataclass(frozen=True)
class Caller:
    """Who a request is: a name for the log, how it got in, and what it was granted."""

    name: str
    via: str  # "token" or "proxy"
    grants: tuple[Grant, ...] = field(default=())

    def may_read(self, table: str) -> bool:
        return any(g.may_read(table) for g in self.grants)

    def has_scope(self, scope: str) -> bool:
        return any(scope in g.scopes for g in self.grants)

    def hidden(self, table: str) -> frozenset[str]:
        """Columns of ``table`` this caller must not see (empty when it cannot read the table)."""
        hidden: frozenset[str] | None = None
        for grant in self.grants:
            if grant.may_read(table):
                mine = grant.hidden(table)
                hidden = mine if hidden is None else hidden & mine
        return hidden or frozenset()


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GrantError(f"{where}: {key} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


class ServedColumns:
    """The served tables' columns, to check hide entries against (``columns`` by table name).

    ``columns(table)`` may raise (a database down at start): that table's entries are then
    taken unchecked, as the table cannot be served either until it answers.
    """

    def __init__(self, tables: Iterable[str], columns: Callable[[str], Sequence[str]]) -> None:
        self._tables = sorted(tables, key=len, reverse=True)  # "a.b" before "a"
        self._columns = columns

    def problem(self, entry: str) -> str | None:
        """What is wrong with hide ``entry``, or None when it names a served column."""
        tables = [t for t in self._tables if entry.startswith(t + ".")]
        if not tables:
            served = ", ".join(sorted(self._tables)[:20]) or "none"
            return f"names no served table; served tables: {served}"
        found: dict[str, list[str]] = {}
        for table in tables:
            try:
                found[table] = list(self._columns(table))
            except Exception:  # the source cannot say now (a database down): not checked
                return None
            if entry[len(table) + 1 :] in found[table]:
                return None
        return f"names no column of {tables[0]}; its columns: {', '.join(found[tables[0]])}"


def grant_from(where: str, entry: Mapping[str, Any], served: ServedColumns | None = None) -> Grant:
    """The grant of one tokens-file or policy-file entry (``tables``, ``hide``, ``scopes``).

    With ``served``, every hide entry must name a column of a served table.
    """
    tables = _strings(where, "tables", entry.get("tables"))
    hide = _strings(where, "hide", entry.get("hide"))
    for column in hide:
        if "." not in column.strip(".") or column.startswith(".") or column.endswith("."):
            raise GrantError(f"{where}: hide entry {column!r} is not TABLE.COLUMN")
        problem = served.problem(column) if served is not None else None
        if problem:
            raise GrantError(f"{where}: hide entry {column!r} {problem}")
    scopes = _strings(where, "scopes", entry.get("scopes"))
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise GrantError(
            f"{where}: unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}"
        )
    return Grant(tables=tables, hide=frozenset(hide), scopes=frozenset(scopes))


def check_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise GrantError(
            f"{where}: name {name!r} is not allowed; expected 1-128 of letters, digits and "
            ". _ @ + -, starting with a letter or digit"
        )
    return name


def visible_columns(columns: Sequence[str], hidden: Iterable[str]) -> list[str]:
    hidden = set(hidden)
    return [c for c in columns if c not in hidden]
