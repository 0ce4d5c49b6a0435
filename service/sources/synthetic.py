"""Deterministic rows of any count, for benchmarks and load tests.

Row ``i`` is a pure function of ``i`` (no random state), so any offset can be served without
producing the rows before it, two runs are byte-identical, and a test can compute the exact row
it expects. A few names carry quotes, ampersands and angle brackets so escaping is always tested.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from .base import Row, RowStream, Table

__all__ = ["COLUMNS", "SyntheticTable", "synthetic_row"]

COLUMNS = ["id", "name", "email", "amount", "created", "status"]
_FIRST = ["Ada", "Brian", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jo"]
_LAST = ["Lovelace", "O'Brien", "Smith & Sons", "Nakamura", "<Doe>", "Müller", "Okafor", "Li"]
_STATUS = ["paid", "pending", "shipped", "refunded", "cancelled"]
_EPOCH = dt.datetime(2024, 1, 1)
_BATCH = 1024


def synthetic_row(i: int) -> tuple[str, ...]:
    """The row at zero-based position ``i``."""
    first = _FIRST[i % 10]
    last = _LAST[(i // 10) % 8]
    cents = (i * 7919) % 1_000_000
    created = _EPOCH + dt.timedelta(seconds=i * 37)
    return (
        str(i + 1),
        f"{first} {last}",
        f"{first.lower()}.{i + 1}@example.com",
        f"{cents // 100}.{cents % 100:02d}",
        created.isoformat(sep=" "),
        _STATUS[i % 5],
    )


class _SyntheticStream(RowStream):
    def __init__(self, start: int, stop: int) -> None:
        self.columns = COLUMNS
        self._start, self._stop = start, stop
        self.rows_read = 0

    def __iter__(self) -> Iterator[Row]:
        row = synthetic_row
        for batch_start in range(self._start, self._stop, _BATCH):
            batch_stop = min(batch_start + _BATCH, self._stop)
            self.rows_read += batch_stop - batch_start
            for i in range(batch_start, batch_stop):
                yield row(i)

    def close(self) -> None:
        """Nothing to release: rows are computed, not read."""


class SyntheticTable(Table):
    kind = "synthetic"

    def __init__(self, rows: int, name: str = "synthetic") -> None:
        self.name = name
        self._rows = rows

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def row_count(self) -> int:
        return self._rows

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        start = min(offset, self._rows)
        stop = self._rows if limit is None else min(self._rows, start + limit)
        return _SyntheticStream(start, stop)
