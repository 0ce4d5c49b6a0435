"""One table, three wire formats: HTML for people, CSV and NDJSON for scripts.

HTML comes from the template (``table.html``); CSV and NDJSON are made here, a batch of rows per
piece, and go through the same chunker, compression, metrics and outcome accounting as the
page. Each format escapes by its own rules: CSV quotes cells with separators, quotes or line
breaks (RFC 4180, CRLF line ends, the csv module's bytes, written a column at a time by
``csvnulls``, which with ``null=`` also keeps NULL apart from the empty string); NDJSON writes
one JSON object per row, keyed by column, with its values typed (``ndjson``). CSV cells are
text as the shared formatter made them.

Only HTML has a success footer. For every format a stream that fails after the first byte
ends with a format-specific error marker and a cut connection (no terminating chunk), so no
client mistakes a truncated download for a complete one. Every marker also says where the
stream resumes: the URL that continues the same query after the last row sent
(``query/links.py``'s ``resume_url``), or that there is no resume point (docs/formats.md).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..sources import RowStream
from ..sources.base import VALUE_KINDS
from .csvnulls import csv_batch_writer, csv_null_pieces, null_marker
from .ndjson import batch_encoder

__all__ = ["FORMATS", "NO_RESUME", "Format", "csv_pieces", "ndjson_pieces"]


def _what(rows_read: int, reason: str) -> str:
    """'failed after N rows' or, for a stream the server cut on purpose, 'was cut after ...'."""
    if reason:
        return f"was cut after {rows_read} rows ({reason})"
    return f"failed after {rows_read} rows"


NO_RESUME = "no resume point"
"""What a marker says where the stream's order cannot be reproduced (docs/formats.md)."""


def _html_error(rows_read: int, reason: str = "", resume: str | None = None) -> bytes:
    what = html.escape(_what(rows_read, reason))
    if resume is None:
        attribute, then = 'data-resume=""', f"; there is {NO_RESUME}"
    else:
        url = html.escape(resume)
        attribute = f'data-resume="{url}"'
        then = f' (<a class="ts-resume" href="{url}">continue after row {rows_read}</a>)'
    return (
        f"\n<!-- tablestream:error after {rows_read} rows -->\n"
        f'<p class="ts-error" data-stream-error="true" {attribute}>The stream {what}{then}; '
        "the table is incomplete.</p>\n"
    ).encode()


def _csv_error(rows_read: int, reason: str = "", resume: str | None = None) -> bytes:
    why = f" ({reason})" if reason else ""
    then = NO_RESUME if resume is None else f"resume: {resume}"
    return (
        f"\r\n# tablestream:error after {rows_read} rows{why}; the table is incomplete; {then}\r\n"
    ).encode()


def _ndjson_error(rows_read: int, reason: str = "", resume: str | None = None) -> bytes:
    error = {
        "tablestream_error": f"the stream {_what(rows_read, reason)}; the table is incomplete",
        "rows_sent": rows_read,
        "resume": resume,
    }
    return ("\n" + json.dumps(error) + "\n").encode()


@dataclass(frozen=True)
class Format:
    name: str
    mimetype: str
    error_marker: Callable[..., bytes]  # (rows_read, reason='', resume=None) -> its bytes

    @property
    def content_type(self) -> str:
        """Every format is UTF-8 and says so (NDJSON too, though its type implies it)."""
        return f"{self.mimetype}; charset=utf-8"


FORMATS = {
    "html": Format("html", "text/html", _html_error),
    "csv": Format("csv", "text/csv", _csv_error),
    "ndjson": Format("ndjson", "application/x-ndjson", _ndjson_error),
}


def csv_pieces(rows: RowStream, flush: Callable[[], str], null: str = "empty") -> Iterator[str]:
    """The header line (flushed at once), then one piece of CSV per batch of rows, written a
    column at a time (``csvnulls``); NULL spelled as ``null`` says, the rows then read from
    ``typed_batches()``. ``empty`` gives the csv module's bytes; from a stream of Python
    values (SQLite) it too reads ``typed_batches()``, whose columns are formatted as they are
    written, instead of rows formatted a column at a time and taken apart again."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(rows.columns)
    lines = rows.csv_lines(null_marker(null), null == "empty")
    if lines is not None:  # written by the database itself (sources/pgcopy.py)
        yield buffer.getvalue()
        yield flush()
        yield from lines
        return
    if null != "empty" or (rows.kinds and set(rows.kinds) <= VALUE_KINDS):
        yield from csv_null_pieces(rows, buffer.getvalue(), flush, null)
        return
    write = csv_batch_writer(["text"] * len(rows.columns), "empty")
    yield buffer.getvalue()
    yield flush()
    for batch in rows.batches():
        yield write(batch)


def ndjson_pieces(
    rows: RowStream, flush: Callable[[], str], decimals_as_numbers: bool = True
) -> Iterator[str]:
    """One JSON object per row, ``{"id":1,"note":null, ...}``, typed by the stream's ``kinds``
    (``ndjson``), one piece per batch of ``typed_batches()``. The first batch is flushed at
    once, as a page's head and a CSV's header line are: the first byte does not wait for a
    whole chunk of rows (a search's first fetch is 32 rows, ``sources/pgplan.py``)."""
    kinds = rows.kinds or ["text"] * len(rows.columns)
    encode = batch_encoder(list(rows.columns), kinds, decimals_as_numbers)
    yield flush()
    for number, batch in enumerate(rows.typed_batches()):
        yield encode(batch)
        if not number:
            yield flush()
