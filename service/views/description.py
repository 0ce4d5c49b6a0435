"""``/tables/<name>.json``: the table described (columns, types, key, row count, URLs).

Reached through the ``/tables/<name>`` route (``tables.py``) when the name ends in ``.json``
and no table has that name. A description is small and changes rarely, so, unlike a stream, it
carries an ETag and is revalidated; it follows the caller's grants (hidden columns left out, an
unreadable table a 404 like an unknown one), so no shared cache may keep it. What it says is
built by ``describe.py``; this is only its HTTP side.
"""

from __future__ import annotations

from flask import Response, abort, current_app, request

from ..describe import as_json, describe, etag
from ..query import DIALECTS
from ..runtime import Runtime
from ..sources import SourceError

__all__ = ["description"]


def description(runtime: Runtime, asked_for: str) -> Response:
    """``/tables/<name>.json``: the table described (columns, types, key, row count, URLs)."""
    name = asked_for.removesuffix(".json")
    source = runtime.catalog.get(name)
    if source is None or not runtime.access.may_read(request.environ, name):
        abort(404, f"There is no table {asked_for!r}.")
    hidden = runtime.access.hidden(request.environ, name)
    try:
        count = runtime.counts.of(source)
        pushed_down = source.kind in DIALECTS
        body = as_json(describe(source, hidden, runtime.settings.sort_rows, pushed_down, count))
    except SourceError as exc:
        current_app.logger.error("cannot describe table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
    tag = etag(body)
    # The caller's own browser may revalidate it; no shared cache may keep it (security.py).
    headers = {"ETag": tag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if request.if_none_match.contains(tag.strip('"')):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)
