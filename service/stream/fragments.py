"""Rows by range for the page's script: the rows a page streamed, sent again on their own.

A table page past ``TABLESTREAM_PAGE_ROWS`` rows releases the rows far from the reader's view
(``templates/static/tablestream.js``) and fetches them back when the reader scrolls or jumps to
them, with the page's own URL plus ``fragment=rows&offset=N&limit=K``. The answer is only the
``<tr>`` rows, made by the same row renderer the page's stream used, so they are the very bytes
the page received (``tests/test_fragments.py``). It goes through the same view as the page: the
same grant, the same hidden columns, the same filters and sort.

A fragment is small (at most ``MAX_ROWS`` rows) and is rendered whole before its status line:
a source that fails is an honest 503, never a cut fragment. Offsets are cheap only where the
source computes row N directly (synthetic); elsewhere a large offset is a scan, so such a
fragment waits for a stream slot like any stream, which bounds what a flood of them can cost.

The page offers ranges (``rows_url``) only when a fragment gives back the rows the page got: the
stream's order must be one the fragment's query reproduces (``ranges_are_stable``). A plain
PostgreSQL page without ``limit`` is read in scan order, which a synchronized scan may start
anywhere: that page keeps every row, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode

from ..sources.base import Row, RowStream, Table

__all__ = ["MAX_ROWS", "cheap_offset", "parse_fragment", "ranges_are_stable", "render", "rows_url"]

MAX_ROWS = 1000
"""Most rows one fragment may ask for: ~100 KiB of markup, rendered in a few milliseconds."""

_VALUES = ("rows",)
_DROPPED = {"limit", "offset", "fragment", "format"}


def parse_fragment(args: Mapping[str, Sequence[str]], limit: int | None, fmt: str) -> str | None:
    """The fragment asked for (``"rows"``) or None; a ValueError whose text is the 400's.

    A fragment needs ``limit`` from 1 to ``MAX_ROWS`` and is HTML.
    """
    values = list(args.get("fragment", ()))
    if not values:
        return None
    allowed = f"expected fragment={'|'.join(_VALUES)} with limit from 1 to {MAX_ROWS}"
    if len(values) > 1:
        raise ValueError(f"fragment is given {len(values)} times; give it once ({allowed}).")
    value = values[0]
    if value not in _VALUES:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"fragment={shown!r} is not a fragment of a page; {allowed}.")
    if limit is None or not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"fragment=rows needs limit from 1 to {MAX_ROWS}, not {limit}; {allowed}.")
    if fmt != "html":
        raise ValueError(f"fragment=rows is HTML, not {fmt}; {allowed}.")
    return value


def cheap_offset(table: Table, offset: int, small_rows: int) -> bool:
    """Whether skipping ``offset`` rows costs next to nothing: a synthetic row is a function
    of its number; any other source reads (or the database steps over) the rows it skips."""
    return offset <= small_rows or table.kind == "synthetic"


def ranges_are_stable(
    table: Table, key: str | None, plain: bool, sorted_: bool, limit: int | None, sql: bool
) -> bool:
    """Whether a fragment (a query with ``limit``) returns the rows the page streamed there.

    Sources without SQL (synthetic, CSV) give their rows in one fixed order, and a sort in
    Python is stable. A database page is in key order when it has a query or a ``limit``
    (``query.open_query``), or when its plain scan is (SQLite's rowid tables); with no key,
    SQLite's plain scan is still in rowid order, but a sort on a column with ties is not fixed.
    ``key`` is the caller's (``query.visible_key``): without it the table is as one without a key.
    """
    if not sql:
        return True
    if key is not None:
        return not plain or limit is not None or bool(getattr(table, "natural_key_order", False))
    return table.kind == "sqlite" and not sorted_


def rows_url(path: str, args: Sequence[tuple[str, str]]) -> str:
    """The page's URL as a fragment URL, to which the script adds ``offset`` and ``limit``."""
    kept = [(k, v) for k, v in args if k not in _DROPPED]
    return f"{path}?{urlencode([*kept, ('fragment', 'rows')])}"


def render(rows: RowStream, render_rows: Callable[[list[Row]], str]) -> tuple[str, int]:
    """All the rows of ``rows`` as markup, and how many; the caller closes ``rows``."""
    parts = [str(render_rows(batch)) for batch in rows.batches()]
    return "".join(parts), rows.rows_read
