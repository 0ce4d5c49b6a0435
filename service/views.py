"""Routes: read and check the request, pick the table, hand back the stream.

Everything that can be refused is refused here, before the first byte: an unknown table is a
404 that lists the known ones, a bad ``limit``/``offset`` a 400 that says what is allowed, a
source that cannot be opened a 503. Once the body starts, the status line is gone and failures
are the stream's business (``stream/body.py``). Views know no SQL and no file paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request, stream_template
from werkzeug.exceptions import ServiceUnavailable

from .config.settings import CSV_NULLS, NDJSON_DECIMALS
from .describe import as_json, content_disposition, describe, download_name, etag
from .observe.requestlog import FILTERS_KEY, REQUEST_ID_KEY
from .query import DIALECTS, Query, QueryError, open_query, parse_query
from .query.links import PageLinks, Tracked
from .runtime import Runtime
from .server.admission import Rejected, Ticket
from .sources import RowStream, SourceBusy, SourceError, Table
from .stream.body import STOP_KEY, TableStreamBody
from .stream.chunker import Chunker
from .stream.compression import GzipChunks
from .stream.formats import FORMATS, Format, csv_pieces, ndjson_pieces
from .stream.fragments import MAX_ROWS as FRAGMENT_ROWS
from .stream.fragments import cheap_offset, parse_fragment, ranges_are_stable, rows_url
from .stream.fragments import render as render_fragment
from .stream.markup import rows_html
from .stream.pacing import Paced

__all__ = ["PACERS_KEY", "ROW_TEMPLATES_KEY", "bp"]

bp = Blueprint("tables", __name__)
ROW_TEMPLATES_KEY = "tablestream.row_templates"  # app.extensions: a stream.rowtemplate.RowTemplates
PACERS_KEY = "tablestream.pacers"  # app.extensions: a stream.pacing.Pacers

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


def query_choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    """The query option ``name``, one of ``allowed``; a 400 saying what is allowed if not."""
    values = request.args.getlist(name)
    if not values:
        return default
    expected = f"expected one of {', '.join(allowed)}"
    if len(values) > 1:
        abort(400, f"{name} is given {len(values)} times; give it once ({expected}).")
    if values[0] not in allowed:
        raw = values[0]
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        abort(400, f"{name}={shown!r} is not a choice here; {expected}.")
    return values[0]


@bp.get("/")
def index() -> str:
    runtime = _runtime()
    access, environ = runtime.access, request.environ
    tables = []
    for described in runtime.describe_tables():
        name = described["name"]
        if access.may_read(environ, name):
            hidden = access.hidden(environ, name)
            described["columns"] = [c for c in described["columns"] if c not in hidden]
            tables.append(described)
    return render_template("index.html", tables=tables)


def table_and_format(name: str) -> tuple[Table, Format]:
    """The table a path names and the format asked for: a ``.csv``/``.ndjson``/``.html`` suffix
    or ``?format=``; 404 for an unknown table, 400 for an unknown or contradictory format."""
    runtime = _runtime()
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
    values = request.args.getlist("format")
    if len(values) > 1:
        abort(400, f"format is given {len(values)} times; give it once ({allowed}).")
    asked = values[0] if values else None
    if asked is not None and asked not in FORMATS:
        shown = asked if len(asked) <= 40 else asked[:40] + "…"
        abort(400, f"format={shown!r} is not a format this service speaks; {allowed}.")
    if asked is not None and by_suffix is not None and asked != by_suffix:
        abort(400, f"the path asks for {by_suffix} but format={asked}; give one ({allowed}).")
    return table, FORMATS[by_suffix or asked or _negotiated()]


_BY_MIMETYPE = {f.mimetype: name for name, f in FORMATS.items()}


def _negotiated() -> str:
    """The format an ``Accept`` header prefers when neither suffix nor ``?format=`` says:
    ``Accept: text/csv`` gets CSV; a browser's ``text/html,…,*/*`` and curl's ``*/*`` get HTML."""
    best = request.accept_mimetypes.best_match(list(_BY_MIMETYPE), default="text/html")
    return _BY_MIMETYPE.get(best or "text/html", "html")


def _pieces(
    fmt: Format,
    source: Table,
    rows: RowStream,
    chunker: Chunker,
    options: dict[str, str],
    **context: Any,
):
    """What the chunker cuts up: the page template, or CSV / NDJSON made from the batches."""
    if fmt.name == "csv":
        return csv_pieces(rows, chunker.flush, options["null"])
    if fmt.name == "ndjson":
        return ndjson_pieces(rows, chunker.flush, options["decimals"] == "number")
    page, render_rows = _page_and_renderer(source, rows)
    wrap = context.pop("wrap_rows", None)
    if wrap is not None:
        render_rows = wrap(render_rows)
    return stream_template(
        page,
        table=source,
        columns=rows.columns,
        rows=rows,
        render_rows=render_rows,
        flush=chunker.flush,
        **context,
    )


def _page_and_renderer(source: Table, rows: RowStream) -> tuple[str, Any]:
    """The page template and the row renderer of a page's rows (and of its fragments)."""
    row_templates = current_app.extensions[ROW_TEMPLATES_KEY]  # tables/<name>.html, if any
    if list(rows.columns) != source.columns():
        # Chosen (_cols) or hidden columns: the table's own row template is written for all
        # of its columns, so such a page takes the default markup.
        return "table.html", rows_html
    return row_templates.page(source.name), row_templates.renderer(source.name, rows.columns)


def _query(runtime: Runtime, source: Table) -> Query:
    """The filters, sort, columns and continuation asked for; a 400 saying what is allowed.

    Columns the caller may not see are not there to ask for: naming one is the 400 of a
    column the table does not have, and the rows come without them.
    """
    hidden = runtime.access.hidden(request.environ, source.name)
    try:
        columns = [c for c in source.columns() if c not in hidden]
        types = {c: t for c, t in source.column_types().items() if c not in hidden}
    except SourceError as exc:
        current_app.logger.error("cannot read the columns of %s: %s", source.name, exc)
        abort(503, f"The table {source.name!r} cannot be read right now; try again later.")
    try:
        q = parse_query(request.args.to_dict(flat=False), columns, types)
    except QueryError as exc:
        abort(400, f"{exc}")
    if hidden and q.columns is None:
        q = replace(q, columns=tuple(columns))
    request.environ[FILTERS_KEY] = [f.param for f in q.filters]
    return q


def _admit(runtime: Runtime, limit: int | None) -> Ticket | None:
    """A stream slot, or a 503 with Retry-After at once; a small page needs none (fast lane).

    A page of at most ``small_rows`` rows is a few hundred KiB at most: it fits in waitress's
    output buffer, so its thread is free again at once even when the client never reads.
    """
    settings = runtime.settings
    if limit is not None and limit <= settings.small_rows:
        return None
    try:
        return runtime.admission.admit(request.remote_addr or "")
    except Rejected as exc:
        runtime.metrics.streams_rejected.labels(exc.reason).inc()
        retry = settings.retry_after
        raise ServiceUnavailable(
            f"{exc.message} Try again in {retry} s, or ask for at most {settings.small_rows} "
            "rows (?limit=), which needs no slot.",
            retry_after=retry,
        ) from None


def _release(ticket: Ticket | None) -> None:
    if ticket is not None:
        ticket.release()


@bp.get("/tables/<name>")
def table(name: str) -> Response:
    runtime = _runtime()
    settings = runtime.settings
    if name.endswith(".json") and name not in runtime.catalog:
        return _description(runtime, name)
    source, fmt = table_and_format(name)
    name = source.name
    limit = query_int("limit", settings.max_rows, default=None)
    offset = query_int("offset", settings.max_offset, default=0)
    q = _query(runtime, source)
    # How NULL is written in CSV and decimals in NDJSON; either may be given with any format.
    options = {
        "null": query_choice("null", CSV_NULLS, settings.csv_null),
        "decimals": query_choice("decimals", NDJSON_DECIMALS, settings.ndjson_decimals),
    }
    typed = fmt.name == "ndjson" or (fmt.name == "csv" and options["null"] != "empty")
    try:
        fragment = parse_fragment(request.args.to_dict(flat=False), limit, fmt.name)
    except ValueError as exc:
        abort(400, f"{exc}")
    cheap = fragment is None or cheap_offset(source, offset or 0, settings.small_rows)
    ticket = _admit(runtime, limit if cheap else None)
    try:
        rows = open_query(source, q, limit, offset or 0, settings.sort_rows, typed=typed)
    except QueryError as exc:
        _release(ticket)
        abort(400, f"{exc}")
    except SourceBusy as exc:
        _release(ticket)
        runtime.metrics.source_busy.labels(name).inc()
        raise ServiceUnavailable(
            f"The table {name!r} is busy ({exc}); try again in {exc.retry_after} s.",
            retry_after=exc.retry_after,
        ) from None
    except SourceError as exc:
        _release(ticket)
        current_app.logger.error("cannot open table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        "Vary": "Accept-Encoding, Accept",
    }
    if fmt.name != "html":
        # A CSV or NDJSON URL is a file to keep: always an attachment, named after the table
        # and its query, so a browser saves orders_status-paid.csv, not "orders" without an
        # extension (and never renders a million lines of text in a tab).
        headers["Content-Disposition"] = content_disposition(download_name(name, q, fmt.name))
    gzipped = settings.gzip and request.accept_encodings.quality("gzip") > 0
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    if fragment is not None:
        return _fragment(source, rows, ticket, headers)
    if request.method == "HEAD":
        # The headers a GET would start with (no length: the body is streamed), and no stream
        # that would be counted as aborted.
        _release(ticket)
        rows.close()
        return Response(iter(()), content_type=fmt.content_type, headers=headers)
    try:
        context: dict[str, Any] = {"limit": limit, "offset": offset}
        stable = ranges_are_stable(
            source, q.is_plain, q.sort is not None, limit, source.kind in DIALECTS
        )
        if fmt.name == "html":
            if stable and settings.page_rows:
                # A page that can release rows is also kept near its reader's parser, and
                # sends the rows it would release at once as comments (stream/pacing.py).
                rows = current_app.extensions[PACERS_KEY].pace(
                    rows,
                    request.environ.get(REQUEST_ID_KEY, ""),
                    runtime.access.owner(request.environ),
                    settings.page_rows,
                )
                if isinstance(rows, Paced):
                    context["wrap_rows"] = rows.compactor(settings.page_rows, settings.chunk_bytes)
            rows = Tracked(rows)  # the "next rows" link needs the last row
            context["page"] = PageLinks(
                request.path,
                list(request.args.items(multi=True)),
                q,
                source,
                limit,
                offset or 0,
                settings.sort_rows,
                pushed_down=source.kind in DIALECTS,
            )
            context["rows_url"] = (
                rows_url(request.path, list(request.args.items(multi=True))) if stable else ""
            )
            context["page_rows"] = settings.page_rows
            context["fragment_rows"] = FRAGMENT_ROWS
        body = _body(runtime, source, fmt, rows, ticket, gzipped, options, **context)
    except BaseException:
        _release(ticket)  # from here on the body's close() gives the slot back
        rows.close()
        raise
    return Response(body, content_type=fmt.content_type, headers=headers)


def _fragment(source: Table, rows: RowStream, ticket: Ticket | None, headers: dict) -> Response:
    """``?fragment=rows``: the rows alone, rendered whole before the status line
    (``stream/fragments.py``), so a source that fails is a 503, not a cut fragment."""
    try:
        _, render_rows = _page_and_renderer(source, rows)
        markup, count = render_fragment(rows, render_rows)
    except SourceError as exc:
        current_app.logger.error("cannot read a fragment of %s: %s", source.name, exc)
        abort(503, f"The table {source.name!r} cannot be read right now; try again later.")
    finally:
        rows.close()
        _release(ticket)
    headers = {**headers, "X-Tablestream-Rows": str(count)}
    headers.pop("Content-Encoding", None)
    return Response(markup, content_type="text/html; charset=utf-8", headers=headers)


def _body(
    runtime: Runtime,
    source: Table,
    fmt: Format,
    rows: RowStream,
    ticket: Ticket | None,
    gzipped: bool,
    options: dict[str, str],
    **context: Any,
) -> TableStreamBody:
    settings = runtime.settings
    chunker = Chunker(settings.chunk_bytes)
    request_id = request.environ.get(REQUEST_ID_KEY, "")
    pieces = _pieces(fmt, source, rows, chunker, options, request_id=request_id, **context)
    request.environ[STOP_KEY] = chunker.stop  # the watchdog may end the stream at a row boundary
    return TableStreamBody(
        pieces,
        rows,
        chunker,
        error_marker=fmt.error_marker,
        observer=runtime.observer(source.name, ticket),
        client_disconnected=request.environ.get("waitress.client_disconnected"),
        encoder=GzipChunks(settings.gzip_level) if gzipped else None,
        label=f"{source.name} (request {request_id or '-'})",
    )


def _description(runtime: Runtime, asked_for: str) -> Response:
    """``/tables/<name>.json``: the table described (columns, types, key, row count, URLs)."""
    name = asked_for.removesuffix(".json")
    source = runtime.catalog.get(name)
    if source is None or not runtime.access.may_read(request.environ, name):
        abort(404, f"There is no table {asked_for!r}.")
    hidden = runtime.access.hidden(request.environ, name)
    try:
        body = as_json(
            describe(source, hidden, runtime.settings.sort_rows, source.kind in DIALECTS)
        )
    except SourceError as exc:
        current_app.logger.error("cannot describe table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
    tag = etag(body)
    headers = {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Authorization"}
    if request.if_none_match.contains(tag.strip('"')):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)


@bp.get("/streams/<request_id>")
def stream_status(request_id: str) -> Response:
    """The outcome of a recent stream of this process, by the request id its page carries."""
    runtime = _runtime()
    owner = runtime.access.owner(request.environ)
    parsed = query_int("parsed", 10**15, default=None)
    if parsed is not None:
        # The page's parser has reached this row: its stream may go on (stream/pacing.py).
        current_app.extensions[PACERS_KEY].heard(request_id, owner, parsed)
    # Only the caller's own streams: another caller's id answers like one never seen.
    found = runtime.recent.get(request_id, owner)
    if found is None:
        body = {"request_id": request_id, "error": "no such recent stream in this process"}
        # With --processes the stream may be a sibling's, and a browser asks again on the same
        # keep-alive connection, i.e. the same process, for ever. A body of unknown length makes
        # waitress send it chunked and close the connection after it (HTTP/1.1 without
        # Content-Length; a WSGI app may not send Connection: close itself), so the next ask is
        # accepted anew, by whichever process wins it.
        return Response(
            iter([json.dumps(body)]),
            404,
            mimetype="application/json",
            headers={"Cache-Control": "no-store"},
        )
    body = {"request_id": request_id, **found}
    return Response(
        json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"}
    )


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    runtime = _runtime()
    if runtime.admission.draining:
        return Response("not ready\nshutting down\n", 503, mimetype="text/plain")
    problems = runtime.problems()
    if problems:
        # The reasons name tables: only for an open service or a caller with the metrics scope.
        why = problems if runtime.access.may_see_internals(request.environ) else []
        return Response("not ready\n" + "".join(p + "\n" for p in why), 503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")
