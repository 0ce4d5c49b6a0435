"""A CSV file named in the configuration is a table; its first line names the columns.

The file is read row by row through the csv module, so a file larger than memory streams like
any other table. Rows shorter or longer than the header are padded or cut to the header's width
so every row of the page has the same number of cells.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .base import BATCH_ROWS, BatchedRowStream, Row, RowStream, SourceError, Table

__all__ = ["CSVTable"]


class _CSVStream(BatchedRowStream):
    def __init__(self, handle: TextIO, columns: list[str], limit: int | None, offset: int):
        self._handle: TextIO | None = handle
        self._reader = csv.reader(handle)
        self.columns = columns
        self._limit, self._offset = limit, offset
        self.rows_read = 0

    def batches(self) -> Iterator[list[Row]]:
        stop = None if self._limit is None else self._offset + self._limit
        rows = itertools.islice(self._reader, self._offset, stop)
        width = len(self.columns)
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            self.rows_read += len(batch)
            yield [row if len(row) == width else (row + [""] * width)[:width] for row in batch]

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


class CSVTable(Table):
    kind = "csv"

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = Path(path)
        self.check()

    def _open_file(self) -> TextIO:
        try:
            return self.path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise SourceError(
                f"CSV table {self.name!r}: cannot open {str(self.path)!r}: {exc}"
            ) from exc

    def columns(self) -> list[str]:
        with self._open_file() as handle:
            try:
                header = next(csv.reader(handle))
            except StopIteration:
                raise SourceError(f"CSV table {self.name!r}: {str(self.path)!r} is empty") from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SourceError(f"CSV table {self.name!r}: bad header: {exc}") from exc
        if not header:
            raise SourceError(
                f"CSV table {self.name!r}: the first line of {str(self.path)!r} names no columns"
            )
        return header

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        handle = self._open_file()
        try:
            header = next(csv.reader(handle))
        except (StopIteration, csv.Error, UnicodeDecodeError) as exc:
            handle.close()
            raise SourceError(f"CSV table {self.name!r}: unreadable header: {exc}") from exc
        # csv.reader buffers nothing beyond the current line, so a fresh reader continues here.
        return _CSVStream(handle, header, limit, offset)

    def check(self) -> None:
        if not self.path.is_file():
            raise SourceError(
                f"TABLESTREAM_CSV: table {self.name!r} points to {str(self.path)!r}, "
                "which is not a file"
            )
        self.columns()
