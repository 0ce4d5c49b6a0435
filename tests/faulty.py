"""Tables that fail as a database that goes away does: after some rows, or when opened."""

from __future__ import annotations

from collections.abc import Iterator

from tablestream.sources.base import RowStream, SourceError, Table

__all__ = ["FailingStream", "FailingTable", "UnopenableTable"]


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


class UnopenableTable(FailingTable):
    """Its columns are known, but opening its rows fails (the 503 before the first byte)."""

    name = "unopenable"

    def __init__(self) -> None:
        super().__init__(fail_after=0)

    def open(self, limit=None, offset=0) -> RowStream:
        raise SourceError("database went away")
