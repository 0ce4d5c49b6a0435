"""Full-text search indexes: which tables have one, and the SQL that asks it (``?_search=``).

A substring filter (``note__contains=``) reads every row; a full-text index answers from its
own word lists. The service never builds one: it finds the one the database has.

- **SQLite**: an FTS5 table named ``<table>_fts`` with external content over the table
  (``content='<table>'``, ``content_rowid`` its rowid or key), as the FTS5 documentation sets
  one up; its columns are the table's columns it indexes. The index is *joined* (``JOIN
  "orders_fts" ON "orders_fts".rowid = "orders"."id"``) and the key read from the index's rowid,
  so rows come in the index's own rowid order, streamed: an ``IN (SELECT rowid … MATCH ?)``
  condition reads every match first (11-49 ms for 125k-250k matches on the 1M-row demo, against
  0.1 ms for the join's first 100 rows; measured while building this). Keeping the index in
  step with its table is the database's job (the triggers in the FTS5 documentation, or
  ``INSERT INTO t_fts(t_fts) VALUES('rebuild')``); ``tablestream demo-db`` builds one.
  The words are FTS5's query syntax: words, ``"phrases"``, ``AND``/``OR``/``NOT``, ``prefix*``.
- **PostgreSQL**: a GIN index on ``to_tsvector('<config>', <expression>)``, or on a stored
  generated ``tsvector`` column computed so (the first by name, not partial), found in the
  catalogue; the condition is that very expression (or column) ``@@
  websearch_to_tsquery('<config>', %s)``, so the planner can use the index, and the words are
  the web-search syntax (words, ``"phrases"``, ``or``, ``-word``), which never fails to parse.

The words are always a parameter. The SQL text here comes from the database's own catalogue
(names quoted, PostgreSQL's index expression as ``pg_get_expr`` writes it), never from a URL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from .base import SourceError

__all__ = [
    "BadSearch",
    "SearchIndex",
    "index_tables",
    "is_search_error",
    "pg_search_index",
    "sqlite_search_index",
]


@dataclass(frozen=True)
class SearchIndex:
    """How to ask a table's full-text index, as SQL around the table's ``FROM``."""

    columns: frozenset[str]  # the table's columns whose words the index holds
    join: str  # put after ``FROM <table>``: the index joined to the table, or ""
    condition: str  # the WHERE condition; one placeholder, the words
    key: str | None  # the table's key as read from the index, to order and continue by
    describe: str  # what the index is, for messages and /tables/<name>.json

    def hidden_from(self, hidden: frozenset[str]) -> bool:
        """Whether a caller who may not see ``hidden`` would learn of them by searching."""
        return bool(self.columns & hidden)


class BadSearch(SourceError):
    """The database refused the search words' syntax (SQLite's FTS5); the request's mistake."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_FTS5 = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\s.*?\bUSING\s+fts5\s*\((.*)\)\s*$", re.I | re.S)
_OPTION = r"\b{}\s*=\s*(?:'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"|([\w$]+))"


def _option(arguments: str, name: str) -> str | None:
    found = re.search(_OPTION.format(name), arguments, re.I)
    if found is None:
        return None
    single, double, bare = found.groups()
    if single is not None:
        return single.replace("''", "'")
    if double is not None:
        return double.replace('""', '"')
    return bare


def sqlite_search_index(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], key: str | None
) -> SearchIndex | None:
    """``<table>_fts`` if it is an FTS5 table with external content over ``table`` whose
    columns are all columns of ``table``; None otherwise."""
    fts = f"{table}_fts"
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (fts,)
    ).fetchone()
    found = _FTS5.match(row[0] or "") if row is not None else None
    if found is None or _option(found.group(1), "content") != table:
        return None
    rowid = _option(found.group(1), "content_rowid") or "rowid"
    indexed = [r[1] for r in conn.execute(f"PRAGMA table_info({_quote(fts)})")]
    if not indexed or not set(indexed) <= set(columns):
        return None
    if rowid != "rowid" and rowid not in columns:
        return None
    index_rowid = f"{_quote(fts)}.rowid"
    return SearchIndex(
        columns=frozenset(indexed),
        join=f" JOIN {_quote(fts)} ON {index_rowid} = {_quote(table)}.{_quote(rowid)}",
        condition=f"{_quote(fts)} MATCH ?",
        # The key is the rowid (sqlite.py's key is an INTEGER PRIMARY KEY): ordered and
        # continued by the index's rowid, FTS5 hands its matches in order, without a sort.
        key=index_rowid if key is not None and rowid in ("rowid", key) else None,
        describe=f"SQLite FTS5 table {fts} ({', '.join(indexed)})",
    )


_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")


def index_tables(entries: Sequence[tuple[str, str | None]]) -> frozenset[str]:
    """Of a file's tables (``sqlite_master``'s name and sql), the FTS5 tables and their
    shadow tables (``<fts>_data``, ``_idx``, …): a table's index, not a table to serve."""
    fts = [name for name, sql in entries if _FTS5.match(sql or "")]
    return frozenset(fts) | {name + suffix for name in fts for suffix in _SHADOWS}


_SEARCH_ERRORS = ("fts5: ", "unknown special query", "no such column", "unterminated string")


def is_search_error(exc: BaseException, sql: str) -> bool:
    """Whether SQLite refused ``sql`` because of its FTS5 words (a syntax error, a column
    filter naming no indexed column), not because the table cannot be read."""
    return (
        isinstance(exc, sqlite3.OperationalError)
        and " MATCH ?" in sql
        and str(exc).startswith(_SEARCH_ERRORS)
    )


PG_GIN_INDEXES = """
SELECT c.relname, pg_get_expr(i.indexprs, i.indrelid), NULL,
       ARRAY(SELECT a.attname FROM pg_depend d
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
               AND d.refobjid = i.indrelid AND d.refobjsubid > 0 ORDER BY a.attnum)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = %(table)s::regclass AND am.amname = 'gin' AND i.indnatts = 1
  AND i.indexprs IS NOT NULL AND i.indpred IS NULL
UNION ALL
SELECT c.relname, pg_get_expr(ad.adbin, ad.adrelid), v.attname,
       ARRAY(SELECT a.attname FROM pg_depend d
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
               AND d.refobjid = i.indrelid AND d.refobjsubid > 0 ORDER BY a.attnum)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
JOIN pg_attribute v ON v.attrelid = i.indrelid AND v.attnum = i.indkey[0]
JOIN pg_attrdef ad ON ad.adrelid = v.attrelid AND ad.adnum = v.attnum
WHERE i.indrelid = %(table)s::regclass AND am.amname = 'gin' AND i.indnatts = 1
  AND i.indexprs IS NULL AND i.indpred IS NULL AND v.attgenerated = 's'
  AND v.atttypid = 'tsvector'::regtype
ORDER BY 1
"""
"""A table's GIN indexes on one expression or on one stored generated ``tsvector`` column (not
partial): name, the ``to_tsvector`` expression, the generated column (or NULL), and the
columns the words come from (the generated column itself among them)."""

_TSVECTOR = re.compile(r"to_tsvector\('([A-Za-z0-9_.]+)'::regconfig, .*\)", re.S)


def pg_search_index(
    indexes: Sequence[tuple[str, str, str | None, Sequence[str]]],
) -> SearchIndex | None:
    """The first of ``indexes`` (rows of ``PG_GIN_INDEXES``) on ``to_tsvector('<config>',
    …)``, as a search condition; None when there is none.

    A stored generated column is searched as itself: its words are stored with their
    positions, where an expression index has every candidate row's ``to_tsvector`` computed
    again to check it (a phrase of common words: 345-1,009 ms on the 1M-row demo)."""
    for name, expression, column, columns in indexes:
        found = _TSVECTOR.fullmatch(expression or "")
        if found is None or not columns:
            continue
        config = found.group(1)
        vector = _quote(column) if column is not None else expression
        # psycopg reads % as a placeholder: the catalogue's text is doubled, as names are.
        vector = vector.replace("%", "%%")
        return SearchIndex(
            columns=frozenset(columns),
            join="",
            condition=f"{vector} @@ websearch_to_tsquery('{config}'::regconfig, %s)",
            key=None,
            describe=f"PostgreSQL GIN index {name} on {column or expression}",
        )
    return None
