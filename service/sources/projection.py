"""Rows without some columns: what a caller may not see is absent, never blank.

Used for the columns access control hides (``hide = ["customers.email"]``): the stream's
``columns`` and every row lose the same positions, so HTML, CSV and NDJSON show the table as
if the column did not exist. One C-level ``itemgetter`` call per row keeps it cheap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from operator import itemgetter

from .base import BatchedRowStream, Row, RowStream

__all__ = ["without_columns"]


class _Projected(BatchedRowStream):
    def __init__(self, inner: RowStream, keep: list[int]) -> None:
        self._inner = inner
        self.columns = [inner.columns[i] for i in keep]
        pick = itemgetter(*keep) if keep else (lambda row: ())
        # itemgetter of one index returns the cell itself, not a 1-tuple.
        self._pick = (lambda row: (row[keep[0]],)) if len(keep) == 1 else pick

    @property
    def rows_read(self) -> int:  # type: ignore[override]
        return self._inner.rows_read

    def batches(self) -> Iterator[list[Row]]:
        pick = self._pick
        for batch in self._inner.batches():
            yield list(map(pick, batch))

    def close(self) -> None:
        self._inner.close()


def without_columns(rows: RowStream, hidden: Collection[str]) -> RowStream:
    """``rows`` minus the columns named in ``hidden`` (names it lacks are ignored)."""
    keep = [i for i, name in enumerate(rows.columns) if name not in hidden]
    if len(keep) == len(rows.columns):
        return rows
    return _Projected(rows, keep)
