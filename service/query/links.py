"""A stream's links for its query: sort by a header, remove a filter, "next rows", and resume.

Plain links, so the page works without scripts. "next rows" is offered when the stream ended
because of ``limit`` (so more rows may follow) and is written once the last row has gone out:
from the last row's key (``_after``, signed for this query by ``keyset.py``), when the rows came
in key order and the page shows the key and sort columns, else as the next ``offset``. The key is
the caller's (``visible_key``): a caller who may not see the table's key gets ``offset`` links.
Its row is taken from the last batch only: one assignment per batch, nothing per row.

The *resume point* of a cut stream (``resume_url``, written into every format's error marker)
is the same ``_after`` link made from the last row sent, with ``limit`` reduced by the rows
already sent. It exists only where the order is reproducible: in key order, or a sort with the
key as tie-breaker. ``offset`` is no resume point (rows inserted or deleted before it would
shift the continuation), so where ``_after`` cannot be made there is none.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from ..sources.base import Row, RowStream, Table, WrappedRows
from ..sources.cells import format_value
from .keyset import Keysets, query_scope
from .spec import Query

__all__ = ["PageLinks", "Tracked"]


class Tracked(WrappedRows):
    """A RowStream that remembers its last row (for the "next rows" link and the resume point),
    whichever way its rows are read: text ``batches()``, ``typed_batches()`` (cells as Python
    values, NULL as None) or the database's own CSV lines (``csv_lines``, parsed only when a
    resume point is asked for, once)."""

    def __init__(self, inner: RowStream) -> None:
        super().__init__(inner)
        self.kinds = inner.kinds
        self.last_row: Row | None = None
        self.typed = False  # last_row holds Python values, not text
        self._last_lines = ""
        self._null = ""

    def batches(self) -> Iterator[list[Row]]:
        for batch in self._inner.batches():
            self.last_row = batch[-1]
            yield batch

    def typed_batches(self) -> Iterator[list[Row]]:
        self.typed = True
        for batch in self._inner.typed_batches():
            self.last_row = batch[-1]
            yield batch

    def csv_lines(self, marker: str, empty_is_null: bool) -> Iterator[str] | None:
        lines = self._inner.csv_lines(marker, empty_is_null)
        if lines is None:
            return None
        self._null = marker
        return self._remember(lines)

    def _remember(self, lines: Iterator[str]) -> Iterator[str]:
        for piece in lines:
            self._last_lines = piece
            yield piece

    def last(self) -> tuple[Row | None, bool]:
        """The last row read, and whether its cells are Python values (NULL as None)."""
        if self._last_lines:
            *_, row = csv.reader(io.StringIO(self._last_lines))
            return tuple(None if c == self._null and c else c for c in row), False
        return self.last_row, self.typed


@dataclass(frozen=True)
class ActiveFilter:
    label: str
    remove_url: str


class PageLinks:
    """URLs for one page: ``path`` with ``args`` (every query parameter, in order) changed."""

    def __init__(
        self,
        path: str,
        args: Sequence[tuple[str, str]],
        q: Query,
        table: Table,
        key: str | None,
        limit: int | None,
        offset: int,
        sort_rows: int,
        pushed_down: bool,
        keysets: Keysets,
    ) -> None:
        self._path = path
        self._args = list(args)
        self.q = q
        self._limit, self._offset = limit, offset
        self._key = key
        self._table_name = table.name
        self._keysets = keysets
        # The rows come in key order when a sort (tie-broken by the key) or SQL with any
        # query orders them so, or when the source's own order is the key's.
        self._key_ordered = self._key is not None and (
            (pushed_down and (not q.is_plain or limit is not None))
            or getattr(table, "natural_key_order", False)
        )
        self._can_continue = self._key is not None and (
            pushed_down or (q.sort is None and hasattr(table, "seek"))
        )
        self._bounded_sort = None if pushed_down else sort_rows

    def _url(self, drop: set[str], add: Sequence[tuple[str, str]] = ()) -> str:
        kept = [(k, v) for k, v in self._args if k not in drop]
        query = urlencode([*kept, *add])
        return self._path + ("?" + query if query else "")

    @property
    def filters(self) -> list[ActiveFilter]:
        shown = []
        for i, f in enumerate(self.q.filters):
            label = f"{f.column} {_WORDS[f.lookup]} {f.text}".rstrip()
            if f.lookup == "isnull":
                label = f"{f.column} {'is' if f.value else 'is not'} empty"
            # Remove this one filter: the same parameter with its other values kept.
            others = [
                (f.param, x.text)
                for j, x in enumerate(self.q.filters)
                if j != i and x.param == f.param
            ]
            shown.append(ActiveFilter(label, self._url({f.param, "_after", "offset"}, others)))
        if self.q.search is not None:
            shown.append(
                ActiveFilter(f"search {self.q.search}", self._url({"_search", "_after", "offset"}))
            )
        return shown

    @property
    def unsort_url(self) -> str:
        return self._url({"_sort", "_sort_desc", "_after", "offset"})

    def sort_url(self, column: str) -> str:
        """Ascending on first click, descending when already ascending."""
        descending = self.q.sort == column and not self.q.descending
        add = [("_sort_desc" if descending else "_sort", column)]
        drop = {"_sort", "_sort_desc", "_after", "offset"}
        bound = self._bounded_sort
        if bound is not None and (self._limit is None or self._limit > bound):
            drop.add("limit")
            add.append(("limit", str(bound)))
        return self._url(drop, add)

    def heading(self, column: str) -> Markup:
        """A column header's content: a link that sorts by it, ▲/▼ on the sorted one."""
        return Markup('<a href="{}">{}</a>{}').format(
            self.sort_url(column), column, self.sort_mark(column)
        )

    def sort_mark(self, column: str) -> str:
        if self.q.sort != column:
            return ""
        return " ▼" if self.q.descending else " ▲"

    def next_url(self, rows: Tracked) -> str | None:
        """The next slice's URL, or None when this page holds the table's last rows."""
        if self._limit is None or rows.rows_read < self._limit or rows.last_row is None:
            return None
        after = self._after(rows.columns, *rows.last())
        if after is not None:
            assert self._key is not None
            token = self._keysets.sign(query_scope(self._table_name, self._key, self.q), after)
            return self._url({"_after", "offset"}, [("_after", token)])
        return self._url({"offset", "_after"}, [("offset", str(self._offset + self._limit))])

    def resume_url(self, rows: Tracked) -> str | None:
        """Where a cut stream continues: this query after the last row ``rows`` gave, with
        ``limit`` less the rows sent; None when its order cannot be reproduced (no key the
        caller may see, heap order, a sort not tie-broken by the key, the key not shown)."""
        row, typed = rows.last()
        sent = rows.rows_read
        if row is None or sent == 0:
            # Nothing was sent: the same URL again is the continuation, in any order.
            return self._url(set()) if sent == 0 else None
        after = self._after(rows.columns, row, typed)
        if after is None:
            return None
        assert self._key is not None
        token = self._keysets.sign(query_scope(self._table_name, self._key, self.q), after)
        add = [("_after", token)]
        if self._limit is not None:
            add.append(("limit", str(max(self._limit - sent, 0))))
        return self._url({"_after", "offset", "limit"}, add)

    def _after(self, shown: Sequence[str], row: Row, typed: bool = False) -> tuple[Any, ...] | None:
        if not (self._can_continue and self._key_ordered):
            return None
        columns = list(shown)
        if self._key not in columns:
            return None
        key = row[columns.index(self._key)]
        if typed:
            key = format_value(key)
        if self.q.sort is None:
            return (key,)
        if self.q.sort not in columns:
            return None
        value = row[columns.index(self.q.sort)]
        if typed:  # NULL is None here, never confused with the empty string
            return (None if value is None else format_value(value), key)
        if value is None:  # a NULL in the database's own CSV lines (null= spelled it)
            return (None, key)
        if value == "":
            # NULL and the empty string look alike in text cells: only a non-text column's
            # empty cell is surely NULL; otherwise the next page goes by offset.
            if self.q.types.get(self.q.sort, "text") == "text":
                return None
            return (None, key)
        return (value, key)


_WORDS = {
    "exact": "=",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "not": "≠",
    "contains": "contains",
    "startswith": "starts with",
    "in": "in",
    "isnull": "",
}
