"""``/tables/<name>``: the stream (page, CSV, NDJSON), rows by range, the table described.

The route checks everything it can before the first byte (``params.py``), takes a stream slot or
answers 503 at once (``_admit``), opens the query, and hands the rows to the stream
(``stream/body.py``), which owns them and the slot from then on. Until then the slot belongs to
the ``with`` block of ``table()``, so every other way out of it gives the slot back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Response, abort, current_app, request, stream_template
from werkzeug.exceptions import ServiceUnavailable

from ..config.settings import CSV_NULLS, NDJSON_DECIMALS
from ..describe import as_json, content_disposition, describe, download_name, etag
from ..observe.requestlog import REQUEST_ID_KEY
from ..query import DIALECTS, QueryError, open_query
from ..query.links import PageLinks, Tracked
from ..runtime import Runtime
from ..security import NOT_STORED
from ..server.admission import NO_SLOT, NoSlot, Rejected, Ticket
from ..sources import BadValue, QueryTimeout, RowStream, SourceBusy, SourceError, Table
from ..sources.deadline import TIMEOUT_ADVICE
from ..sources.search import BadSearch
from ..stream.body import STOP_KEY, TableStreamBody
from ..stream.chunker import Chunker
from ..stream.compression import GzipChunks
from ..stream.csvnulls import null_marker
from ..stream.formats import Format, csv_pieces, ndjson_pieces
from ..stream.fragments import MAX_ROWS as FRAGMENT_ROWS
from ..stream.fragments import cheap_offset, parse_fragment, ranges_are_stable, rows_url
from ..stream.fragments import render as render_fragment
from ..stream.markup import rows_html
from ..stream.pacing import Paced
from ..stream.resumepoints import with_resume_points
from . import PACERS_KEY, ROW_TEMPLATES_KEY, bp
from .facets import facets_url
from .params import (
    app_runtime,
    bad_search,
    query_choice,
    query_int,
    table_and_format,
    table_query,
)

__all__: list[str] = []


def _pieces(
    fmt: Format,
    source: Table,
    rows: RowStream,
    chunker: Chunker,
    options: dict[str, str],
    resume: Callable[[], str | None],
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
        render_rows = wrap(render_rows, chunker.flush)
    render_rows = with_resume_points(render_rows, resume)
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


def _admit(runtime: Runtime, limit: int | None) -> Ticket | NoSlot:
    """A stream slot, or a 503 with Retry-After at once; a small page needs none (fast lane).

    A page of at most ``small_rows`` rows is a few hundred KiB at most: it fits in waitress's
    output buffer, so its thread is free again at once even when the client never reads.
    """
    settings = runtime.settings
    if limit is not None and limit <= settings.small_rows:
        return NO_SLOT
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


@bp.get("/tables/<name>")
def table(name: str) -> Response:
    runtime = app_runtime()
    settings = runtime.settings
    if name.endswith(".json") and name not in runtime.catalog:
        return _description(runtime, name)
    source, fmt = table_and_format(name)
    limit = query_int("limit", settings.max_rows, default=None)
    offset = query_int("offset", settings.max_offset, default=0)
    q, key = table_query(runtime, source, ignore=("_facet",))  # the page's facets: facets.py
    # How NULL is written in CSV and decimals in NDJSON; either may be given with any format.
    options = {
        "null": query_choice("null", CSV_NULLS, settings.csv_null),
        "decimals": query_choice("decimals", NDJSON_DECIMALS, settings.ndjson_decimals),
    }
    typed = fmt.name == "ndjson" or (fmt.name == "csv" and options["null"] != "empty")
    # A CSV's spelling of NULL, known before the query is sent: a database may write the CSV
    # (PostgreSQL's COPY, which HEAD would only start to throw away).
    csv = None
    if fmt.name == "csv" and request.method != "HEAD":
        csv = (null_marker(options["null"]), options["null"] == "empty")
    try:
        fragment = parse_fragment(request.args.to_dict(flat=False), limit, fmt.name)
    except ValueError as exc:
        abort(400, f"{exc}")
    cheap = fragment is None or cheap_offset(source, offset or 0, settings.small_rows)
    # The ticket's one owner: leaving this block gives the slot back on every path (an error
    # page, HEAD, a fragment, an exception), except a stream's, whose body took the ticket over
    # (``_body``) and gives it back when waitress closes it.
    with _admit(runtime, limit if cheap else None) as ticket:
        rows = _open(runtime, source, q, key, limit, offset or 0, typed, csv)
        return _respond(
            runtime, source, fmt, rows, ticket, q, key, limit, offset, options, fragment
        )


def _open(
    runtime: Runtime,
    source: Table,
    q: Any,
    key: Any,
    limit: int | None,
    offset: int,
    typed: bool,
    csv: tuple[str, bool] | None = None,
) -> RowStream:
    """The query's rows, or the 400 / 503 page that says why they cannot be read."""
    name = source.name
    sort_rows = runtime.settings.sort_rows
    try:
        return open_query(source, q, key, limit, offset, sort_rows, typed=typed, csv=csv)
    except QueryError as exc:
        abort(400, f"{exc}")
    except BadValue as exc:
        current_app.logger.info("table %s refused a value of the request: %s", name, exc)
        abort(
            400,
            f"A value in this query does not fit its column: {exc}. Expected a value "
            "of the column's type.",
        )
    except BadSearch as exc:
        abort(400, bad_search(exc))
    except SourceBusy as exc:
        runtime.metrics.source_busy.labels(name).inc()
        raise ServiceUnavailable(
            f"The table {name!r} is busy ({exc}); try again in {exc.retry_after} s.",
            retry_after=exc.retry_after,
        ) from None
    except QueryTimeout as exc:
        runtime.metrics.query_timeouts.labels(name).inc()
        current_app.logger.info("table %s: %s", name, exc)
        abort(
            503,
            f"This query on {name!r} took too long: it found no first row within "
            f"{exc.seconds * 1000:.0f} ms, and was stopped. To make it cheaper, {TIMEOUT_ADVICE}.",
        )
    except SourceError as exc:
        current_app.logger.error("cannot open table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")


def _respond(
    runtime: Runtime,
    source: Table,
    fmt: Format,
    rows: RowStream,
    ticket: Ticket | NoSlot,
    q: Any,
    key: Any,
    limit: int | None,
    offset: int | None,
    options: dict[str, str],
    fragment: Any,
) -> Response:
    """The response for open ``rows``: a fragment, HEAD's headers, or the stream's body."""
    settings = runtime.settings
    name = source.name
    headers = {
        "Cache-Control": NOT_STORED,
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
        return _fragment(source, rows, headers)
    if request.method == "HEAD":
        # The headers a GET would start with (no length: the body is streamed), and no stream
        # that would be counted as aborted.
        rows.close()
        return Response(iter(()), content_type=fmt.content_type, headers=headers)
    try:
        context: dict[str, Any] = {"limit": limit, "offset": offset}
        stable = ranges_are_stable(
            source, key, q.is_plain, q.sort is not None, limit, source.kind in DIALECTS
        )
        links = PageLinks(
            request.path,
            list(request.args.items(multi=True)),
            q,
            source,
            key,
            limit,
            offset or 0,
            settings.sort_rows,
            pushed_down=source.kind in DIALECTS,
            keysets=runtime.keysets,
        )
        if fmt.name == "html":
            context["page"] = links
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
                    context["wrap_rows"] = rows.compactor(settings.page_rows)
            context["rows_url"] = (
                rows_url(request.path, list(request.args.items(multi=True))) if stable else ""
            )
            context["page_rows"] = settings.page_rows
            context["facets_url"] = facets_url(request.path, list(request.args.items(multi=True)))
            context["fragment_rows"] = FRAGMENT_ROWS
        rows = Tracked(rows)  # "next rows" and the markers' resume point need the last row
        context["resume"] = partial(links.resume_url, rows)
        body = _body(runtime, source, fmt, rows, ticket, gzipped, options, **context)
    except BaseException:
        rows.close()  # the ticket is the caller's ``with``'s until the body took it over
        raise
    return Response(body, content_type=fmt.content_type, headers=headers)


def _fragment(source: Table, rows: RowStream, headers: dict) -> Response:
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
    headers = {**headers, "X-Tablestream-Rows": str(count)}
    headers.pop("Content-Encoding", None)
    return Response(markup, content_type="text/html; charset=utf-8", headers=headers)


def _body(
    runtime: Runtime,
    source: Table,
    fmt: Format,
    rows: RowStream,
    ticket: Ticket | NoSlot,
    gzipped: bool,
    options: dict[str, str],
    **context: Any,
) -> TableStreamBody:
    settings = runtime.settings
    chunker = Chunker(settings.chunk_bytes)
    request_id = request.environ.get(REQUEST_ID_KEY, "")
    resume = context.pop("resume")  # the marker's; a page's rows carry some too
    pieces = _pieces(fmt, source, rows, chunker, options, resume, request_id=request_id, **context)
    request.environ[STOP_KEY] = chunker.stop  # the watchdog may end the stream at a row boundary
    # The last line that can fail comes before the hand-over: from here the body owns the slot.
    observer = runtime.observer(source.name, ticket.hand_over())
    return TableStreamBody(
        pieces,
        rows,
        chunker,
        error_marker=fmt.error_marker,
        observer=observer,
        client_disconnected=request.environ.get("waitress.client_disconnected"),
        encoder=GzipChunks(settings.gzip_level) if gzipped else None,
        label=f"{source.name} (request {request_id or '-'})",
        resume=resume,
    )


def _description(runtime: Runtime, asked_for: str) -> Response:
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
