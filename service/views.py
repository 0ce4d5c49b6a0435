"""Routes: read and check the request, pick the table, hand back the stream.

Everything that can be refused is refused here, before the first byte: an unknown table is a
404 that lists the known ones, a bad ``limit``/``offset`` a 400 that says what is allowed, a
source that cannot be opened a 503. Once the body starts, the status line is gone and failures
are the stream's business (``streaming.py``). Views know no SQL and no file paths.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, current_app, render_template, request, stream_template
from werkzeug.exceptions import ServiceUnavailable

from .chunker import Chunker
from .requestlog import REQUEST_ID_KEY
from .runtime import Runtime
from .sources import SourceBusy, SourceError
from .streaming import TableStreamBody

__all__ = ["bp"]

bp = Blueprint("tables", __name__)

_DIGITS = re.compile(r"[0-9]{1,19}")


def _runtime() -> Runtime:
    return current_app.extensions["tablestream"]


def query_int(name: str, high: int, default: int | None) -> int | None:
    """The query argument ``name`` as an int in [0, high]; a 400 saying what is allowed if not."""
    values = request.args.getlist(name)
    if not values:
        return default
    allowed = f"expected a whole number from 0 to {high}"
    if len(values) > 1:
        abort(400, f"{name} is given {len(values)} times; give it once ({allowed}).")
    raw = values[0]
    if not _DIGITS.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        abort(400, f"{name}={shown!r} is not a whole number; {allowed}.")
    value = int(raw)
    if value > high:
        abort(400, f"{name}={value} is too large; {allowed}.")
    return value


@bp.get("/")
def index() -> str:
    runtime = _runtime()
    return render_template("index.html", tables=runtime.describe_tables())


@bp.get("/tables/<name>")
def table(name: str) -> Response:
    runtime = _runtime()
    settings = runtime.settings
    source = runtime.catalog.get(name)
    if source is None:
        abort(404, f"There is no table {name!r}.")
    limit = query_int("limit", settings.max_rows, default=None)
    offset = query_int("offset", settings.max_offset, default=0)
    try:
        rows = source.open(limit=limit, offset=offset or 0)
    except SourceBusy as exc:
        runtime.metrics.source_busy.labels(name).inc()
        raise ServiceUnavailable(
            f"The table {name!r} is busy ({exc}); try again in {exc.retry_after} s.",
            retry_after=exc.retry_after,
        ) from None
    except SourceError as exc:
        current_app.logger.error("cannot open table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
    chunker = Chunker(settings.chunk_bytes)
    pieces = stream_template(
        "table.html",
        table=source,
        columns=rows.columns,
        rows=rows,
        flush=chunker.flush,
        limit=limit,
        offset=offset,
    )
    body = TableStreamBody(
        pieces,
        rows,
        chunker,
        observer=runtime.observer(name),
        client_disconnected=request.environ.get("waitress.client_disconnected"),
        label=f"{name} (request {request.environ.get(REQUEST_ID_KEY, '-')})",
    )
    return Response(
        body,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    problems = _runtime().problems()
    if problems:
        return Response("not ready\n" + "\n".join(problems) + "\n", 503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")
