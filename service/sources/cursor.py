"""Rows read from a database cursor: ``fetchmany`` round trips, rendered in batches of 256.

A rendered batch is small (a few hundred rows: one HTTP chunk). Rendering a whole 2,000-row
fetch at once made strings of ~300 KB per step, several copies of them per batch, and left the
allocator holding ~4 MiB more after a thousand aborted streams (measured); 256-row batches keep
each string near one chunk and are no slower. A fetch is held while its batches go out, so a
stream whose client stalls holds one fetch of raw rows: with 2,000-row fetches, 20 stalled
readers left the process ~11-15 MiB above idle afterwards (CPython keeps a 1 MiB arena of small
objects while any object in it lives), with 256-row fetches ~2 MiB; on the same machine 256-row
fetches were no slower, for SQLite and for PostgreSQL on localhost (docs/sources.md). SQLite
and PostgreSQL share this; each closes its own cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .base import BATCH_ROWS, BatchedRowStream, Row
from .cells import format_batch

__all__ = ["CursorRowStream"]


class CursorRowStream(BatchedRowStream):
    """A RowStream over ``fetchmany``; subclasses set it up and release the cursor in close()."""

    _fetchmany: Callable[[int], Sequence[Sequence[Any]]]
    _fetch_rows: int
    _rows_are_text = False  # True when every cell comes from the database as str already

    def batches(self) -> Iterator[list[Row]]:
        fetch, size = self._fetchmany, self._fetch_rows
        while fetched := fetch(size):
            for start in range(0, len(fetched), BATCH_ROWS):
                part = fetched[start : start + BATCH_ROWS]
                self.rows_read += len(part)
                yield part if self._rows_are_text else format_batch(part)

    def typed_batches(self) -> Iterator[list[Row]]:
        """The fetched rows as the driver gave them, NULL as None (``kinds`` says what they are).

        For SQLite that is its values; for PostgreSQL the server's text where the stream was
        opened ``typed`` and Python values for the rest."""
        fetch, size = self._fetchmany, self._fetch_rows
        while fetched := fetch(size):
            for start in range(0, len(fetched), BATCH_ROWS):
                part = fetched[start : start + BATCH_ROWS]
                self.rows_read += len(part)
                yield part
