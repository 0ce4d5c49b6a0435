"""Deterministic rows of any count, for benchmarks and load tests.

Row ``i`` is a pure function of ``i`` (no random state), so any offset can be served without
producing the rows before it, two runs are byte-identical, and a test can compute the exact row
it expects. A few names carry quotes, ampersands and angle brackets so escaping is always tested.

The benchmarks stream millions of these rows, so the generator must not be what they measure:
``synthetic_batch`` builds a batch from lookup tables (names, clock times) and works out the
date once per day instead of a ``datetime`` per row — about 3x faster than ``synthetic_row``,
which stays as the readable definition that the tests hold the fast path to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from .base import BATCH_ROWS, BatchedRowStream, Row, RowStream, Table

__all__ = ["COLUMNS", "SyntheticTable", "synthetic_batch", "synthetic_row"]

COLUMNS = ["id", "name", "email", "amount", "created", "status"]
KINDS = ["integer", "text", "text", "real", "timestamp", "text"]
"""What each column's text is (``base.KINDS``): typed NDJSON writes id and amount as numbers."""
_FIRST = ["Ada", "Brian", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jo"]
_LAST = ["Lovelace", "O'Brien", "Smith & Sons", "Nakamura", "<Doe>", "Müller", "Okafor", "Li"]
_STATUS = ["paid", "pending", "shipped", "refunded", "cancelled"]
_EPOCH = dt.datetime(2024, 1, 1)
_SECONDS_PER_ROW = 37


def synthetic_row(i: int) -> tuple[str, ...]:
    """The row at zero-based position ``i``."""
    first = _FIRST[i % 10]
    last = _LAST[(i // 10) % 8]
    cents = (i * 7919) % 1_000_000
    created = _EPOCH + dt.timedelta(seconds=i * _SECONDS_PER_ROW)
    return (
        str(i + 1),
        f"{first} {last}",
        f"{first.lower()}.{i + 1}@example.com",
        f"{cents // 100}.{cents % 100:02d}",
        created.isoformat(sep=" "),
        _STATUS[i % 5],
    )


# Lookup tables for synthetic_batch; the name depends on i % 80, the clock on seconds of day.
_NAMES = [f"{_FIRST[k % 10]} {_LAST[(k // 10) % 8]}" for k in range(80)]
_MAILBOXES = [first.lower() + "." for first in _FIRST]
_HOURS_MINUTES = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_TWO_DIGITS = [f"{n:02d}" for n in range(100)]


def synthetic_batch(start: int, stop: int) -> list[tuple[str, ...]]:
    """Rows ``start`` to ``stop - 1``, equal to ``[synthetic_row(i) for i in range(...)]``."""
    out = []
    append = out.append
    names, mailboxes, statuses = _NAMES, _MAILBOXES, _STATUS
    clock, two = _HOURS_MINUTES, _TWO_DIGITS
    day, date = -1, ""
    for i in range(start, stop):
        n = str(i + 1)
        cents = (i * 7919) % 1_000_000
        days, second = divmod(i * _SECONDS_PER_ROW, 86_400)
        if days != day:
            day = days
            date = (_EPOCH + dt.timedelta(days=days)).date().isoformat() + " "
        append(
            (
                n,
                names[i % 80],
                mailboxes[i % 10] + n + "@example.com",
                str(cents // 100) + "." + two[cents % 100],
                date + clock[second // 60] + two[second % 60],
                statuses[i % 5],
            )
        )
    return out


class _SyntheticStream(BatchedRowStream):
    def __init__(self, start: int, stop: int) -> None:
        self.columns = COLUMNS
        self.kinds = KINDS
        self._start, self._stop = start, stop
        self.rows_read = 0

    def batches(self) -> Iterator[list[Row]]:
        for batch_start in range(self._start, self._stop, BATCH_ROWS):
            batch_stop = min(batch_start + BATCH_ROWS, self._stop)
            self.rows_read += batch_stop - batch_start
            yield synthetic_batch(batch_start, batch_stop)

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

    def column_types(self) -> dict[str, str]:
        return {**dict.fromkeys(COLUMNS, "text"), "id": "integer", "amount": "real"}

    natural_key_order = True

    def key_column(self) -> str:
        return "id"

    def seek(self, key: str) -> int:
        """The position of the row after the one whose id is ``key`` (ids are positions + 1)."""
        from ..query.spec import convert_value

        return max(0, convert_value("id", "integer", key))

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        start = min(offset, self._rows)
        stop = self._rows if limit is None else min(self._rows, start + limit)
        return _SyntheticStream(start, stop)
