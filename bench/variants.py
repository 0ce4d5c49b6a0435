"""The ways to serve a table that the service is measured against (bench only, never in the app).

Every variant reads the same rows from the service's own synthetic table and sends the same
bytes as ``/tables/synthetic`` (the runner checks that), so only the way of producing the page
differs:

- ``render_template``: the whole page rendered in memory by the per-cell template, then sent;
- ``buffered5``: the classic docs recipe, ``TemplateStream.enable_buffering(5)`` over the
  per-cell template, each buffered group its own HTTP chunk;
- ``hand``: rows built in Python (join + markupsafe escape per cell), no Jinja in the row loop,
  coalesced by the service's own chunker;
- ``ceiling``: one pre-built chunk repeated up to ``?bytes=``: what waitress and the socket
  alone can do;
- ``HandRowTemplates``: the markup of a table's own row template (``synthetic_rt``, from
  ``bench/templates/tables/``, or ``orders``) written by hand in Python, f-strings and
  ``html.escape`` per cell, served as ``synthetic_hand`` and ``orders_hand`` through the
  service's own route (chunker, body) — what a compiled row template is measured against
  (``bench/rowtemplates.py``). ``html.escape`` spells ``'`` and ``"`` as ``&#x27;`` and
  ``&quot;`` where Jinja writes ``&#39;`` and ``&#34;``; otherwise the bytes are the same.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
    stream_with_context,
)
from markupsafe import Markup, escape

from tablestream.observe.requestlog import REQUEST_ID_KEY
from tablestream.query import Query
from tablestream.query.links import PageLinks, Tracked
from tablestream.sources import RowStream
from tablestream.sources.synthetic import SyntheticTable, synthetic_row
from tablestream.stream.chunker import Chunker
from tablestream.stream.fragments import MAX_ROWS as FRAGMENT_ROWS
from tablestream.stream.fragments import rows_url
from tablestream.stream.markup import ROW_MARKUP
from tablestream.stream.resumepoints import EVERY as RESUME_EVERY
from tablestream.stream.resumepoints import comment as resume_comment
from tablestream.stream.rowtemplate import BatchRenderer, RowTemplates
from tablestream.views import ROW_TEMPLATES_KEY

__all__ = ["HandRowTemplates", "bp", "install_row_template_tables"]

bp = Blueprint("bench", __name__, template_folder="templates")

_MARK = "\x00rows\x00"


def _open() -> tuple[RowStream, dict, int]:
    """The synthetic table's rows for ``?limit=``, the template context, and the row count."""
    runtime = current_app.extensions["tablestream"]
    table = runtime.catalog["synthetic"]
    limit = request.args.get("limit", default=1000, type=int)
    rows = Tracked(table.open(limit=limit))
    settings = runtime.settings
    context = {
        "table": table,
        "columns": rows.columns,
        "rows": rows,
        "flush": lambda: "",
        "request_id": request.environ.get(REQUEST_ID_KEY, ""),
        "limit": limit,
        "offset": 0,
        # The page's window of rows (data-rows-url), as /tables/synthetic gives it.
        "rows_url": rows_url(f"/tables/{table.name}", list(request.args.items(multi=True))),
        "page_rows": settings.page_rows,
        "fragment_rows": FRAGMENT_ROWS,
        # The service's links (sort headers, "next rows"), as /tables/synthetic makes them.
        "page": PageLinks(
            f"/tables/{table.name}",
            list(request.args.items(multi=True)),
            Query(),
            table,
            table.key_column(),
            limit,
            0,
            settings.sort_rows,
            pushed_down=False,
            keysets=runtime.keysets,
        ),
    }
    context["resume_point"] = _resume_point(context["page"], rows.columns)
    return rows, context, min(limit, table.row_count())


def _resume_point(links: PageLinks, columns: Sequence[str]):
    """The resume point the service's page carries after ``row``, the ``n``-th row, when it
    ends a batch that has one (stream/resumepoints.py: the 1st, 9th, 17th, … of 256 rows)."""

    def point(row: Sequence[str], n: int) -> Markup:
        if (-(-n // 256) - 1) % RESUME_EVERY:
            return Markup("")
        sent = SimpleNamespace(columns=columns, rows_read=n, last=lambda: (row, False))
        return resume_comment(links.resume_url(sent))

    return point


def _chunk_bytes() -> int:
    return current_app.extensions["tablestream"].settings.chunk_bytes


def _closing(pieces: Iterator[bytes], rows: RowStream) -> Iterator[bytes]:
    try:
        yield from pieces
    finally:
        rows.close()


@bp.get("/bench/render_template")
def whole_page() -> Response:
    rows, context, _ = _open()
    with rows:
        return Response(render_template("classic_table.html", **context), mimetype="text/html")


@bp.get("/bench/buffered5")
def buffered5() -> Response:
    rows, context, _ = _open()
    current_app.update_template_context(context)
    stream = current_app.jinja_env.get_template("classic_table.html").stream(context)
    stream.enable_buffering(5)
    body = (piece.encode() for piece in stream)
    return Response(stream_with_context(_closing(body, rows)), mimetype="text/html")


@bp.get("/bench/hand")
def hand() -> Response:
    rows, context, total = _open()
    # Head and footer from the same template; the footer needs the row count, known up front
    # for the synthetic table.
    last = synthetic_row(total - 1) if total else None
    counted = type(
        "Counted",
        (),
        {
            "rows_read": total,
            "last_row": last,
            "columns": rows.columns,
            "last": lambda self: (last, False),  # as Tracked.last(): text cells
        },
    )()
    page = render_template("hand_table.html", **{**context, "rows": counted}, rows_go_here=_MARK)
    head, tail = page.split(_MARK)

    def pieces() -> Iterator[str]:
        yield head
        start, between, end = ROW_MARKUP
        for number, batch in enumerate(rows.batches()):
            if number:
                yield "</tbody><tbody>\n"  # as table.html: one group per batch
            for row in batch:
                yield start + between.join([escape(cell) for cell in row]) + end
            if number % RESUME_EVERY == 0:
                yield str(resume_comment(context["page"].resume_url(rows)))
        yield tail

    chunks = Chunker(_chunk_bytes()).chunks(pieces())
    return Response(_closing(chunks, rows), mimetype="text/html")


@bp.get("/bench/ceiling")
def ceiling() -> Response:
    size = request.args.get("bytes", default=1_000_000, type=int)
    row = (ROW_MARKUP.start + "x" + ROW_MARKUP.end).encode()
    block = row * (_chunk_bytes() // len(row) + 1)
    whole, rest = divmod(size, len(block))
    body = itertools.chain(itertools.repeat(block, whole), [block[:rest]] if rest else [])
    return Response(body, mimetype="text/html")


_VOID = ' class="ts-void"'


def _synthetic_rt_rows(batch: Sequence[Sequence[str]]) -> str:
    e = html.escape
    return "".join(
        [
            f'<tr{_VOID if s == "refunded" else ""}><td class="c-id ts-num">{e(i)}</td>'
            f'<td class="c-name"><a href="?offset={int(i) - 1}&amp;limit=1">{e(n)}</a></td>'
            f'<td class="c-email">{e(m)}</td><td class="c-amount ts-num">{float(a):,.2f}</td>'
            f'<td class="c-created">{e(c)}</td><td class="c-status">{e(s)}</td></tr>\n'
            for i, n, m, a, c, s in batch
        ]
    )


def _orders_rows(batch: Sequence[Sequence[str]]) -> str:
    e = html.escape
    return "".join(
        [
            f"<tr{_VOID if s in ('refunded', 'cancelled') else ''}>"
            f'<td class="ts-num ts-narrow">{e(i)}</td><td class="ts-num">'
            f'<a href="customers?id={e(c)}">{e(c)}</a></td>'
            f'<td title="{e(p)}">{e(p)}</td><td class="ts-num ts-narrow">{e(q)}</td>'
            f'<td class="ts-num">{float(t):,.2f}</td><td class="ts-wide ts-time">{e(at)}</td>'
            f'<td class="ts-narrow"><span class="ts-badge ts-badge-{e(s)}">{e(s)}</span></td>'
            f'<td title="{e(note)}">{e(note)}</td></tr>\n'
            for i, c, p, q, t, at, s, note in batch
        ]
    )


_HAND = {  # table: (the table whose page it takes, its rows written by hand)
    "synthetic_hand": ("synthetic_rt", _synthetic_rt_rows),
    "orders_hand": ("orders", _orders_rows),
}


class HandRowTemplates(RowTemplates):
    """The service's row templates, plus ``<table>_hand`` tables whose rows are written by the
    hand renderers above instead: the same page template, the same route, the same chunker
    and body, so only the way of making a batch's markup differs."""

    def page(self, table: str) -> str:
        mine = _HAND.get(table)
        return super().page(mine[0] if mine else table)

    def renderer(self, table: str, columns: Sequence[str]) -> BatchRenderer:
        mine = _HAND.get(table)
        if mine is None:
            return super().renderer(table, columns)
        render = mine[1]
        return lambda batch: Markup(render(batch))


def install_row_template_tables(app: Flask, synthetic_rows: int) -> None:
    """For bench/rowtemplates.py: the synthetic rows again as ``synthetic_rt``, with the row
    template of bench/templates/tables/ (seen once this blueprint is registered), and as
    ``synthetic_hand``, with the same markup by hand; ``orders_hand`` is a view in the bench's
    database. Call after ``app.register_blueprint(bp)``."""
    catalog = app.extensions["tablestream"].catalog
    if "synthetic" in catalog:
        for name in ("synthetic_rt", "synthetic_hand"):
            catalog[name] = SyntheticTable(synthetic_rows, name=name)
    row_templates = HandRowTemplates(app.jinja_env, catalog)
    row_templates.compile_known(catalog)
    app.extensions[ROW_TEMPLATES_KEY] = row_templates
