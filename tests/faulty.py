"""A table whose source fails after a given number of rows, as a database that goes away does."""

from __future__ import annotations

from collections.abc import Iterator

from tablestream.sources.base import RowStream, Table

__all__ = ["FailingStream", "FailingTable"]


class FailingStream(RowStream):
    def __init__(self, fail_after: int) -> None:
        self.columns = ["n"]
        self.rows_read = 0
        self.closed = False
        self._fail_after = fail_after

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for i in range(10**9):
            if i == self._fail_after:
                raise ConnectionError("database went away")
            self.rows_read += 1
            yield (str(i),)

    def close(self) -> None:
        self.closed = True


class FailingTable(Table):
    kind = "test"
    name = "failing"

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.opened: list[FailingStream] = []

    def columns(self) -> list[str]:
        return ["n"]

    def open(self, limit=None, offset=0) -> RowStream:
        self.opened.append(FailingStream(self.fail_after))
        return self.opened[-1]
