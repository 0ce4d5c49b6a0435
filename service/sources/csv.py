"""A CSV file named in the configuration is a table; its first line names the columns.

The file is read row by row through the csv module, so a file larger than memory streams like
any other table. Rows shorter or longer than the header are padded or cut to the header's width
so every row of the page has the same number of cells. Bytes that are not UTF-8 are shown as
U+FFFD (the rule SQLite text follows too), and a repeated header name is made unique
(``unique_columns``). Cells are text unless a sidecar file gives the columns types
(``csvtypes``: ``orders.csv-metadata.json``), read at start-up.

Fields may be up to ``TABLESTREAM_CSV_FIELD_LIMIT`` characters (the csv module's own default,
128 KiB, failed real files "after 0 rows"); a longer field ends the stream with an error that
names the row, after every row before it.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .base import BATCH_ROWS, BatchedRowStream, Row, RowStream, SourceError, Table, unique_columns
from .csvtypes import DATATYPES, QUERY_TYPES, sidecar_types

__all__ = ["DEFAULT_FIELD_LIMIT", "CSVTable"]

DEFAULT_FIELD_LIMIT = 16 * 1024 * 1024


class _CSVStream(BatchedRowStream):
    def __init__(
        self, table: CSVTable, handle: TextIO, columns: list[str], limit: int | None, offset: int
    ):
        self._table = table
        self._handle: TextIO | None = handle
        self._reader = csv.reader(handle)
        self.columns = columns
        if table.datatypes:
            self.kinds = [DATATYPES[table.datatypes.get(c, "string")] for c in columns]
        self._limit, self._offset = limit, offset
        self.rows_read = 0

    def batches(self) -> Iterator[list[Row]]:
        stop = None if self._limit is None else self._offset + self._limit
        rows = itertools.islice(self._reader, self._offset, stop)
        width = len(self.columns)
        while True:
            batch: list[Row] = []
            try:
                for row in itertools.islice(rows, BATCH_ROWS):
                    batch.append(row if len(row) == width else (row + [""] * width)[:width])
            except csv.Error as exc:
                if batch:  # every row before the bad one arrives whole
                    self.rows_read += len(batch)
                    yield batch
                row_number = self._offset + self.rows_read + 1
                raise self._table.row_error(self._reader.line_num, exc, row_number) from exc
            if not batch:
                return
            self.rows_read += len(batch)
            yield batch

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


class CSVTable(Table):
    kind = "csv"

    def __init__(self, name: str, path: str, field_limit: int = DEFAULT_FIELD_LIMIT) -> None:
        self.name = name
        self.path = Path(path)
        self.field_limit = field_limit
        # The csv module has one limit per process; every CSV table is configured alike.
        csv.field_size_limit(field_limit)
        if not self.path.is_file():
            raise SourceError(
                f"TABLESTREAM_CSV: table {self.name!r} points to {str(self.path)!r}, "
                "which is not a file"
            )
        self.datatypes = sidecar_types(name, self.path, self.columns())

    def row_error(self, line: int, exc: csv.Error, row: int | None = None) -> SourceError:
        """The error for a row the csv module refused, naming the row (and the limit)."""
        why = str(exc)
        if "field larger than field limit" in why:
            why = f"a field is longer than TABLESTREAM_CSV_FIELD_LIMIT={self.field_limit} chars"
        where = "the header" if row is None else f"row {row}"
        return SourceError(
            f"CSV table {self.name!r}: {where} (line {line} of {str(self.path)!r}): {why}"
        )

    def _open_file(self) -> TextIO:
        try:
            return self.path.open(newline="", encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise SourceError(
                f"CSV table {self.name!r}: cannot open {str(self.path)!r}: {exc}"
            ) from exc

    def _header(self, handle: TextIO) -> list[str]:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise SourceError(f"CSV table {self.name!r}: {str(self.path)!r} is empty") from None
        except csv.Error as exc:
            raise self.row_error(reader.line_num, exc) from exc
        if not header:
            raise SourceError(
                f"CSV table {self.name!r}: the first line of {str(self.path)!r} names no columns"
            )
        return unique_columns(header)

    def columns(self) -> list[str]:
        with self._open_file() as handle:
            return self._header(handle)

    def column_types(self) -> dict[str, str]:
        return {c: QUERY_TYPES.get(self.datatypes.get(c, ""), "text") for c in self.columns()}

    def column_details(self) -> list[dict[str, Any]]:
        types = self.column_types()
        return [
            {"name": c, "type": types[c], "source_type": self.datatypes.get(c), "nullable": None}
            for c in self.columns()
        ]

    def open(self, limit: int | None = None, offset: int = 0) -> RowStream:
        handle = self._open_file()
        try:
            header = self._header(handle)
        except SourceError:
            handle.close()
            raise
        # csv.reader buffers nothing beyond the current line, so a fresh reader continues here.
        return _CSVStream(self, handle, header, limit, offset)

    def check(self) -> None:
        """Open the file and read its header and first row (for /readyz)."""
        with self.open(limit=1) as rows:
            for _ in rows.batches():
                pass
