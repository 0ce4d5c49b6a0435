"""``/tables/<name>/facets.json``: how many rows hold each value of a column, in this filter.

A page's facets are a separate request, so the table's first byte never waits for a count. The
filters are the table's own (``params.table_query``, the same access rules: a hidden column is
not there to facet on, a table the caller may not read is a 404), pushed down as the stream's
are (``query/sql.py``), and each count is bounded by ``TABLESTREAM_FACET_TIME_LIMIT_MS``
(``sources/facets.py``); an interrupted count is ``timed_out`` and counted
(``tablestream_facet_timeouts_total``). Facets need a database: CSV files and the synthetic
table are a 400. Every refusal here is JSON, ``{"error": message}`` (``errors.refuse_as``): the
page's script and any other caller read this URL as JSON.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Response, abort, current_app, request
from werkzeug.exceptions import HTTPException

from ..errors import refuse_as
from ..query import DIALECTS
from ..query.sql import clauses
from ..security import NOT_STORED
from ..sources import SourceError
from ..sources.facets import facet_counts, few_distinct
from ..sources.search import BadSearch
from . import bp
from .params import app_runtime, bad_search, table_and_format, table_query

__all__ = ["facets_url"]

TOP_VALUES = 30
"""Values listed per facet, the most frequent first; ``truncated`` says when there are more."""


# The page's own parameters a count has no use for: which rows of the result, and how they come.
_NOT_COUNTED = frozenset({"limit", "offset", "_after", "format", "null", "decimals", "fragment"})


def facets_url(path: str, args: list[tuple[str, str]]) -> str | None:
    """The facets of a page asked for with ``_facet=`` (``path`` is the page's), in its filter:
    the URL the page's script fetches beside the stream; None when the page asks for none."""
    if not any(k == "_facet" for k, _ in args):
        return None
    kept = [(k, v) for k, v in args if k not in _NOT_COUNTED]
    return f"{path}/facets.json?{urlencode(kept)}"


def _link(path: str, args: list[tuple[str, str]], column: str, value: Any) -> str:
    """The table's URL with this facet's value added as a filter."""
    added = (f"{column}__isnull", "1") if value is None else (column, str(value))
    return f"{path}?{urlencode([*args, added])}"


@bp.get("/tables/<name>/facets.json")
def facets(name: str) -> Response:
    try:
        return _facets(name)
    except HTTPException as exc:
        if exc.response is not None or exc.code is None:  # already a whole response
            raise
        refuse_as("json", exc.code, exc.description or exc.name)


def _facets(name: str) -> Response:
    runtime = app_runtime()
    source, _ = table_and_format(name)
    dialect = DIALECTS.get(source.kind)
    if dialect is None:
        abort(
            400,
            f"Facets need a database source (SQLite or PostgreSQL); {name!r} is a {source.kind} "
            "table, which could only be counted by reading every row.",
        )
    q, _ = table_query(runtime, source, ignore=("_facet",))
    asked = request.args.getlist("_facet")
    hidden = runtime.access.hidden(request.environ, source.name)
    visible = [c for c in source.columns() if c not in hidden]
    for column in asked:
        if column not in visible:
            abort(400, f"_facet={column!r} is not a column of {name!r}; expected one of "
                       f"{', '.join(visible)}.")  # fmt: skip
    index = source.search_index() if q.search is not None else None
    where, params = clauses(
        dialect,
        replace(q, sort=None, after=None),
        None,
        source.sql_name,
        index,  # type: ignore[attr-defined]
    )
    seconds = runtime.settings.facet_time_limit_ms / 1000
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "_facet"]
    table_path = request.path.removesuffix("/facets.json")
    result: dict[str, Any] = {}
    try:
        for column in dict.fromkeys(asked):
            facet = facet_counts(source, dialect.quote, column, where, params, TOP_VALUES, seconds)
            if facet.timed_out:
                runtime.metrics.facet_timeouts.labels(source.name).inc()
            result[column] = {
                "values": [
                    {"value": v, "count": n, "url": _link(table_path, args, column, v)}
                    for v, n in facet.values
                ],
                "truncated": facet.truncated,
                "timed_out": facet.timed_out,
            }
        others = [c for c in visible if c not in result]
        suggested = few_distinct(source, dialect.quote, others, TOP_VALUES, seconds)
    except BadSearch as exc:
        abort(400, bad_search(exc))
    except SourceError as exc:
        current_app.logger.error("cannot count facets of %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
    body = json.dumps({"facets": result, "suggested": suggested}, default=str)
    return Response(body, mimetype="application/json", headers={"Cache-Control": NOT_STORED})
