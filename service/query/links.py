"""The page's links for a query: sort by a header, remove a filter, and "next rows".

Plain links, so the page works without scripts. "next rows" is offered when the stream ended
because of ``limit`` (so more rows may follow) and is written once the last row has gone out:
from the last row's key (``_after``, signed for this query by ``keyset.py``), when the rows came
in key order and the page shows the key and sort columns, else as the next ``offset``. The key is
the caller's (``visible_key``): a caller who may not see the table's key gets ``offset`` links.
Its row is taken from the last batch only: one assignment per batch, nothing per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from ..sources.base import Row, RowStream, Table, WrappedRows
from .keyset import Keysets, query_scope
from .spec import Query

__all__ = ["PageLinks", "Tracked"]


class Tracked(WrappedRows):
    """A RowStream that remembers its last row (for the "next rows" link)."""

    def __init__(self, inner: RowStream) -> None:
        super().__init__(inner)
        self.last_row: Row | None = None

    def batches(self) -> Iterator[list[Row]]:
        for batch in self._inner.batches():
            self.last_row = batch[-1]
            yield batch


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
        after = self._after(rows)
        if after is not None:
            assert self._key is not None
            token = self._keysets.sign(query_scope(self._table_name, self._key, self.q), after)
            return self._url({"_after", "offset"}, [("_after", token)])
        return self._url({"offset", "_after"}, [("offset", str(self._offset + self._limit))])

    def _after(self, rows: Tracked) -> tuple[Any, ...] | None:
        if not (self._can_continue and self._key_ordered):
            return None
        columns = list(rows.columns)
        if self._key not in columns:
            return None
        row = rows.last_row
        assert row is not None
        key = row[columns.index(self._key)]
        if self.q.sort is None:
            return (key,)
        if self.q.sort not in columns:
            return None
        value = row[columns.index(self.q.sort)]
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
