"""The one small interface between where rows come from and everything else.

A ``Table`` is something configured (a SQLite table, a CSV file, the synthetic generator);
``Table.open()`` gives a ``RowStream`` for one request. Sources know nothing about HTTP: they
hand out tuples of already formatted cell strings and count what they read, and their
``close()`` is safe to call at any time, any number of times, because the server may end a
stream at any moment (client gone, error, shutdown).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .search import SearchIndex

__all__ = [
    "KINDS",
    "VALUE_KINDS",
    "BadValue",
    "BatchedRowStream",
    "RowStream",
    "SourceBusy",
    "SourceError",
    "Table",
    "WrappedRows",
    "unique_columns",
]

Row = Sequence[str]

BATCH_ROWS = 256
"""Rows per batch when a source has no natural batch: about 32 KiB of HTML, one chunk."""

KINDS = (
    "value",
    "text",
    "integer",
    "real",
    "numeric",
    "boolean",
    "date",
    "timestamp",
    "bytes",
    "csv:integer",
    "csv:real",
    "csv:numeric",
    "csv:boolean",
    "csv:date",
    "csv:timestamp",
    "sqlite:timestamp",
)
"""What a column's cells are in ``typed_batches()``, for formats that keep types (NDJSON) and
NULLs (CSV with ``null=``); NULL is None in every kind. ``value``: Python values of any type,
typed one by one (SQLite, psycopg). The others are text in ``cells``' spelling of a type the
source vouches for (PostgreSQL's server-written text, the synthetic rows): ``integer`` and
``real`` are JSON's spelling of the number, ``boolean`` is ``true``/``false``, ``numeric`` a
decimal (or ``NaN``/``Infinity``), ``timestamp`` ISO with a space. ``csv:*``: a CSV file's text
that its sidecar says is of that type, checked cell by cell (empty is NULL).
``sqlite:timestamp``: ``value`` cells of a SQLite column declared a date/time type
(``sources/sqlitetypes.py``), whose text in SQLite's ``datetime()`` form NDJSON writes with a
``T``."""

VALUE_KINDS = frozenset({"value", "sqlite:timestamp"})
"""The kinds whose cells are Python values of any type, which formats turn into text."""


def unique_columns(names: Sequence[str]) -> list[str]:
    """Column names made unique, the same for every source and so in every format.

    The first ``name`` keeps its name; later ones become ``name_2``, ``name_3``, ... skipping
    any name the table already has. Without this NDJSON, keyed by column, silently dropped all
    but the last of a repeated CSV header name while HTML and CSV showed both.
    """
    if len(set(names)) == len(names):
        return list(names)
    taken = set(names)
    seen: set[str] = set()
    unique = []
    for name in names:
        if name in seen:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            name = f"{name}_{n}"
            taken.add(name)
        seen.add(name)
        unique.append(name)
    return unique


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message is safe to show to an operator."""


class BadValue(SourceError):
    """The source refused a value the request gave (PostgreSQL's SQLSTATE class 22, "data
    exception", with the request's parameters): the request is wrong, not the source."""


class SourceBusy(SourceError):
    """The source is healthy but has no capacity now (e.g. its connection pool is exhausted)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RowStream(ABC):
    """One request's rows: column names, an iterator of formatted rows, and ``close()``.

    ``rows_read`` counts rows handed out so far; sources update it once per batch, not per row,
    and the count is exact once the iterator is exhausted.

    The page renders rows a batch at a time (``batches()``), so per-row work stays out of the
    template engine. A source only has to give ``__iter__``; one that reads in batches anyway
    (a cursor's ``fetchmany``) overrides ``batches()`` too and hands its batches over as they are.
    """

    columns: Sequence[str]
    rows_read: int = 0
    kinds: Sequence[str] | None = None  # each column's KINDS entry; None: every column text

    @abstractmethod
    def __iter__(self) -> Iterator[Row]: ...

    def batches(self) -> Iterator[list[Row]]:
        """The same rows as ``__iter__``, as non-empty lists.

        When the rows fail part-way through a batch, the rows read so far are still handed on
        before the error, so a page shows every row the source gave (``rows_read`` of them).
        """
        rows = iter(self)
        while True:
            batch: list[Row] = []
            try:
                for row in itertools.islice(rows, BATCH_ROWS):
                    batch.append(row)
            except Exception:
                if batch:
                    yield batch
                raise
            if not batch:
                return
            yield batch

    def typed_batches(self) -> Iterator[list[Row]]:
        """The same rows as ``batches()``, with NULL as None and cells as ``kinds`` says.

        Only one of ``batches()`` and ``typed_batches()`` is read from a stream. A source whose
        text rows are all there is (a CSV file, the synthetic rows) gives its batches.
        """
        return self.batches()

    def csv_lines(self, marker: str, empty_is_null: bool) -> Iterator[str] | None:
        """The rows as CSV lines (CRLF ends) the source writes itself, a batch per item, NULL
        written as ``marker`` (``stream/csvnulls.py``'s spellings; with ``empty_is_null`` the
        empty string too), byte for byte what csvnulls would write; or None, the usual case:
        then the rows are read and written as CSV here. Asked before any row is read."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections and files. Idempotent."""

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BatchedRowStream(RowStream):
    """A RowStream that reads in batches anyway: it gives ``batches()``, rows come from them."""

    def __iter__(self) -> Iterator[Row]:
        return itertools.chain.from_iterable(self.batches())

    @abstractmethod
    def batches(self) -> Iterator[list[Row]]: ...


class WrappedRows(BatchedRowStream):
    """Another stream's rows, handed on batch by batch by ``batches()`` with something done on
    the way (remember the last row, wait for the reader); its count and ``close()`` are the
    inner stream's."""

    def __init__(self, inner: RowStream) -> None:
        self._inner = inner
        self.columns = inner.columns

    @property
    def rows_read(self) -> int:  # type: ignore[override]
        return self._inner.rows_read

    def close(self) -> None:
        self._inner.close()


class Table(ABC):
    """A configured table, known at start-up by name."""

    name: str
    kind: str

    @abstractmethod
    def columns(self) -> list[str]: ...

    def row_count(self) -> int | None:
        """The number of rows when it is cheap to know, else None."""
        return None

    @abstractmethod
    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        """Start reading up to ``limit`` rows after skipping ``offset`` rows."""

    def column_types(self) -> dict[str, str]:
        """Each column's type as a query compares it (``service/query/spec.py`` ``TYPES``):
        text unless the source knows better."""
        return dict.fromkeys(self.columns(), "text")

    def key_column(self) -> str | None:
        """A column that orders the rows uniquely and cheaply (``_after`` pages), if any."""
        return None

    def search_index(self) -> SearchIndex | None:
        """The table's full-text index (``?_search=``, ``search.py``), if it has one."""
        return None

    def column_details(self) -> list[dict[str, Any]]:
        """Each column for ``/tables/<name>.json``: name, query type, the source's own type and
        whether it may be NULL (None where the source does not say)."""
        types = self.column_types()
        return [
            {"name": c, "type": types.get(c, "text"), "source_type": None, "nullable": None}
            for c in self.columns()
        ]

    def check(self) -> None:
        """Raise SourceError when the table cannot be served now (used by /readyz).

        Sources that can read their first row cheaply do, so a table that is configured but
        unreadable (a view over a dropped table) makes the service not ready.
        """
        return None
