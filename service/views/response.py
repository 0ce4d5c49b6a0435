"""What a table's open rows become: a fragment, HEAD's headers, or the stream's body.

``tables.py`` has checked the request, taken the stream slot and opened the query; this module
makes the response from there: the headers every format shares (never stored, not buffered by a
proxy, an attachment for CSV / NDJSON, gzip if asked), then one of three answers. A fragment
(``?fragment=rows``) is rendered whole before the status line; HEAD closes the rows and sends
headers alone; anything else becomes a ``TableStreamBody`` over the page template or the CSV /
NDJSON pieces, which takes the slot over (``ticket.hand_over()``) as the last step that can
fail. Until then, the ticket stays with ``table()``'s ``with`` block.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Response, abort, current_app, request, stream_template

from ..describe import content_disposition, download_name
from ..observe.requestlog import REQUEST_ID_KEY
from ..query import DIALECTS
from ..query.links import PageLinks, Tracked
from ..runtime import Runtime
from ..security import NOT_STORED
from ..server.admission import NoSlot, Ticket
from ..sources import RowStream, SourceError, Table
from ..stream.body import STOP_KEY, TableStreamBody
from ..stream.chunker import Chunker
from ..stream.compression import GzipChunks
from ..stream.formats import Format, csv_pieces, ndjson_pieces
from ..stream.fragments import MAX_ROWS as FRAGMENT_ROWS
from ..stream.fragments import ranges_are_stable, rows_url
from ..stream.fragments import render as render_fragment
from ..stream.markup import rows_html
from ..stream.pacing import Paced
from ..stream.resumepoints import with_resume_points
from . import PACERS_KEY, ROW_TEMPLATES_KEY
from .facets import facets_url

__all__ = ["respond"]


def respond(
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
