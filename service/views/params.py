"""The query string, read and checked: every refusal is a 400 that says what is allowed.

Pure reading of ``request``: numbers and choices, the table a path names and the format asked
for (suffix, ``?format=`` or ``Accept``), and the filters, sort and columns of the query.
"""

from __future__ import annotations

import re
from dataclasses import replace

from flask import abort, current_app, request

from ..observe.requestlog import FILTERS_KEY
from ..query import Query, QueryError, parse_query, visible_key
from ..query.keyset import NO_KEYSET, query_scope
from ..runtime import Runtime
from ..sources import SourceError, Table
from ..stream.formats import FORMATS, Format

__all__ = [
    "app_runtime",
    "bad_search",
    "query_choice",
    "query_int",
    "table_and_format",
    "table_query",
]

_DIGITS = re.compile(r"[0-9]{1,19}")


def app_runtime() -> Runtime:
    """The app's Runtime (settings, catalogue, metrics, admission, access)."""
    return current_app.extensions["tablestream"]


def _one(name: str, allowed: str) -> str | None:
    """The query argument ``name`` given once, or None when absent; a 400 if given twice."""
    values = request.args.getlist(name)
    if len(values) > 1:
        abort(400, f"{name} is given {len(values)} times; give it once ({allowed}).")
    return values[0] if values else None


def _shown(raw: str) -> str:
    """A value as an error message quotes it: at most 40 characters."""
    return raw if len(raw) <= 40 else raw[:40] + "…"


def query_int(name: str, high: int, default: int | None) -> int | None:
    """The query argument ``name`` as an int in [0, high]; a 400 saying what is allowed if not."""
    allowed = f"expected a whole number from 0 to {high}"
    raw = _one(name, allowed)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        abort(400, f"{name}={_shown(raw)!r} is not a whole number; {allowed}.")
    value = int(raw)
    if value > high:
        abort(400, f"{name}={value} is too large; {allowed}.")
    return value


def query_choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    """The query option ``name``, one of ``allowed``; a 400 saying what is allowed if not."""
    expected = f"expected one of {', '.join(allowed)}"
    raw = _one(name, expected)
    if raw is None:
        return default
    if raw not in allowed:
        abort(400, f"{name}={_shown(raw)!r} is not a choice here; {expected}.")
    return raw


def table_and_format(name: str) -> tuple[Table, Format]:
    """The table a path names and the format asked for: a ``.csv``/``.ndjson``/``.html`` suffix
    or ``?format=``; 404 for an unknown table, 400 for an unknown or contradictory format."""
    runtime = app_runtime()
    catalog = runtime.catalog
    asked_for = name
    stem, dot, suffix = name.rpartition(".")
    by_suffix = None
    if name not in catalog and dot and suffix in FORMATS and stem in catalog:
        name, by_suffix = stem, suffix
    table = catalog.get(name)
    if table is None or not runtime.access.may_read(request.environ, name):
        # The same page for a table the caller may not read as for one that does not exist.
        abort(404, f"There is no table {asked_for!r}.")
    allowed = f"expected one of {', '.join(FORMATS)}"
    asked = _one("format", allowed)
    if asked is not None and asked not in FORMATS:
        abort(400, f"format={_shown(asked)!r} is not a format this service speaks; {allowed}.")
    if asked is not None and by_suffix is not None and asked != by_suffix:
        abort(400, f"the path asks for {by_suffix} but format={asked}; give one ({allowed}).")
    return table, FORMATS[by_suffix or asked or _negotiated()]


_BY_MIMETYPE = {f.mimetype: name for name, f in FORMATS.items()}


def _negotiated() -> str:
    """The format an ``Accept`` header prefers when neither suffix nor ``?format=`` says:
    ``Accept: text/csv`` gets CSV; a browser's ``text/html,…,*/*`` and curl's ``*/*`` get HTML."""
    best = request.accept_mimetypes.best_match(list(_BY_MIMETYPE), default="text/html")
    return _BY_MIMETYPE.get(best or "text/html", "html")


def _searchable(runtime: Runtime, table: Table) -> bool:
    """Whether this caller may search ``table``: it has a full-text index over columns the
    caller may all see (else a search would tell the hidden columns' words)."""
    if not runtime.access.may_read(request.environ, table.name):
        return False
    try:
        index = table.search_index()
    except SourceError:
        return False
    hidden = runtime.access.hidden(request.environ, table.name)
    return index is not None and not index.hidden_from(hidden)


def _check_searchable(runtime: Runtime, source: Table, hidden: frozenset[str]) -> None:
    """A 400 naming the tables this caller can search, when ``source`` is not one of them.

    An index over a column the caller may not see reads as no index at all: the refusal is
    the same, so it does not tell that such a column exists."""
    try:
        index = source.search_index()
    except SourceError as exc:
        current_app.logger.error("cannot read the search index of %s: %s", source.name, exc)
        abort(503, f"The table {source.name!r} cannot be read right now; try again later.")
    if index is not None and not index.hidden_from(hidden):
        return
    others = [t.name for t in runtime.catalog.values() if _searchable(runtime, t)]
    abort(
        400,
        f"_search is not available on {source.name!r}: it has no full-text index. Tables that "
        f"can be searched: {', '.join(others) if others else 'none on this service'}.",
    )


def bad_search(exc: SourceError) -> str:
    """The 400's text for search words the database's full-text syntax refuses."""
    return (
        f"_search={_shown(request.args.get('_search', ''))!r} is not a search this table's "
        f'index understands ({exc}). Expected words, "quoted phrases", AND, OR, NOT and '
        'prefix* (SQLite FTS5); put a word with punctuation in double quotes ("USB-C").'
    )


def table_query(
    runtime: Runtime, source: Table, ignore: tuple[str, ...] = ()
) -> tuple[Query, str | None]:
    """The filters, sort, columns and continuation asked for, and the key this caller pages
    by (``query.visible_key``); a 400 saying what is allowed.

    Columns the caller may not see are not there to ask for: naming one is the 400 of a
    column the table does not have, and the rows come without them. ``_after`` is opened
    here, against this query's scope (``query/keyset.py``): a forged, altered or foreign token
    is a 400, and so is any token when the caller has no key to continue by.
    """
    hidden = runtime.access.hidden(request.environ, source.name)
    try:
        columns = [c for c in source.columns() if c not in hidden]
        types = {c: t for c, t in source.column_types().items() if c not in hidden}
        key = visible_key(source, hidden)
    except SourceError as exc:
        current_app.logger.error("cannot read the columns of %s: %s", source.name, exc)
        abort(503, f"The table {source.name!r} cannot be read right now; try again later.")
    try:
        args = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in ignore}
        q = parse_query(args, columns, types)
        if q.after_token is not None:
            if key is None:
                raise QueryError(NO_KEYSET)
            scope = query_scope(source.name, key, q)
            q = replace(q, after=runtime.keysets.open(q.after_token, scope))
    except QueryError as exc:
        abort(400, f"{exc}")
    if q.search is not None:
        _check_searchable(runtime, source, hidden)
    if hidden and q.columns is None:
        q = replace(q, columns=tuple(columns))
    request.environ[FILTERS_KEY] = [f.param for f in q.filters] + (
        ["_search"] if q.search is not None else []
    )
    return q, key
