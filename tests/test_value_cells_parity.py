"""CSV and NDJSON of Python values (SQLite's) are the bytes each cell's own rule gives.

The writers work a column at a time and, for a column of few distinct values, spell each
value once (``csvnulls._fields``, ``ndjson._strings``); these tests draw batches of every
SQLite storage class — tricky floats, big integers, quotes, commas, CR and LF, the NULL words —
with columns of repeated values and columns of fresh ones, mixed types in one column included,
and compare with the rule applied cell by cell (``cells.format_value``, the csv module, the
json module), under every ``?null=`` spelling. The last test goes through a real SQLite file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from contextlib import closing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablestream.sources.base import BatchedRowStream
from tablestream.sources.cells import format_value
from tablestream.sources.sqlite import SQLiteTable
from tablestream.stream.csvnulls import csv_batch_writer
from tablestream.stream.formats import csv_pieces, ndjson_pieces
from tablestream.stream.ndjson import batch_encoder

NULLS = ("empty", "copy", "\\N", "NULL")
_FLOATS = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            0.1 + 0.2,
            1e16,
            1e15,
            1e-5,
            1e-4,
            -0.0,
            0.0,
            31.0,
            5e-324,
            2.0**53,
            1.7976931348623157e308,
        ]
    ),
)
_INTEGERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 2**53 + 1, -(2**63), 2**63 - 1]),
)
_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(',"\r\nab \\N表\x1f\x00\u2028'), max_size=6),
    st.sampled_from(["", "NULL", "\\N", 'Cable "3m"', "fragile & heavy"]),
    st.text(max_size=4),
)
VALUES = st.one_of(st.none(), _INTEGERS, _FLOATS, _TEXT, st.binary(max_size=4))
"""SQLite's storage classes as sqlite3 hands them over: None, int, float, str, bytes."""


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Rows whose columns are either a few values repeated or fresh values of any class."""
    width = draw(st.integers(min_value=1, max_value=3))
    count = draw(st.integers(min_value=1, max_value=40))
    columns = []
    for _ in range(width):
        if draw(st.booleans()):
            pool = draw(st.lists(VALUES, min_size=1, max_size=3))
            cells = st.sampled_from(pool)
        else:
            cells = VALUES
        columns.append(draw(st.lists(cells, min_size=count, max_size=count)))
    return list(zip(*columns, strict=True))


def _csv_cell_by_cell(rows: list[tuple[Any, ...]], null: str) -> str:
    """csvnulls' rule, one cell at a time: NULL is the marker, a cell is quoted as the csv
    module quotes it or when it is the marker; a lone empty field is quoted but COPY's NULL."""
    marker = "" if null in ("empty", "copy") else null
    lines = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append(marker)
                continue
            text = format_value(value)
            special = any(c in text for c in ',"\r\n') or (null != "empty" and text == marker)
            fields.append('"' + text.replace('"', '""') + '"' if special else text)
        if fields == [""] and not (null == "copy" and row[0] is None):
            fields = ['""']
        lines.append(",".join(fields) + "\r\n")
    return "".join(lines)


def _csv_module(rows: list[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(
        [[format_value(v) for v in row] for row in rows]
    )
    return buffer.getvalue()


def _json_cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return json.dumps({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)])
    if isinstance(value, int):
        return repr(value)
    return json.dumps(format_value(value), ensure_ascii=False)


def _ndjson_cell_by_cell(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    keys = [json.dumps(name, ensure_ascii=False) + ":" for name in names]
    return "".join(
        "{" + ",".join(k + _json_cell(v) for k, v in zip(keys, row, strict=True)) + "}\n"
        for row in rows
    )


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=200, deadline=None)
@given(batches(), st.sampled_from(NULLS))
def test_csv_of_sqlite_values_is_each_cells_rule_under_every_null_spelling(rows, null):
    width = len(rows[0])
    assert csv_batch_writer(["value"] * width, null)(rows) == _csv_cell_by_cell(rows, null)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=300, deadline=None)
@given(batches())
def test_default_csv_of_sqlite_values_is_the_csv_modules_bytes(rows):
    assert csv_batch_writer(["value"] * len(rows[0]), "empty")(rows) == _csv_module(rows)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=200, deadline=None)
@given(batches())
def test_ndjson_of_sqlite_values_is_each_cells_json(rows):
    names = [f"c{i}" for i in range(len(rows[0]))]
    assert batch_encoder(names, ["value"] * len(names))(rows) == _ndjson_cell_by_cell(names, rows)


class _Stream(BatchedRowStream):
    """What a SQLite stream gives the formats: its typed rows, kinds and formatted batches."""

    def __init__(self, columns: list[str], batches: list[list[tuple[Any, ...]]]) -> None:
        self.columns = columns
        self.kinds = ["value"] * len(columns)
        self._batches = batches

    def typed_batches(self):
        return iter(self._batches)

    def batches(self):
        return ([tuple(map(format_value, row)) for row in batch] for batch in self._batches)

    def close(self) -> None:
        pass


@settings(max_examples=100, deadline=None)
@given(batches(), st.sampled_from(NULLS))
def test_csv_of_a_value_stream_is_the_same_from_its_typed_and_its_text_rows(rows, null):
    """``csv_pieces`` reads a SQLite stream's typed rows for ``empty`` too: the same bytes as
    its formatted rows written by the csv module."""
    names = [f"c{i}" for i in range(len(rows[0]))]
    body = "".join(csv_pieces(_Stream(names, [rows, rows[:1]]), lambda: "", null))
    header = ",".join(names) + "\r\n"
    assert body == header + _csv_cell_by_cell(rows + rows[:1], null)


def test_a_sqlite_table_of_every_storage_class_streams_csv_and_ndjson_cell_by_cell(tmp_path):
    """Through a real file: mixed types in one column, repeated and fresh values, 3 fetches."""
    path = tmp_path / "mixed.sqlite3"
    row_sets = [
        (1, 0.1 + 0.2, 'Cable "3m"', b"\x00\xff", None, "a,b"),
        (2**63 - 1, 1e16, "NULL", b"", "\\N", 2.5),
        (-(2**63), 1e-5, "", None, "", b"\x01"),
        (2**53 + 1, 31.0, "line\r\nbreak", b"x", 7, None),
        (None, float("inf"), "fragile & heavy", None, None, 1e15),
    ]
    rows = [(*row_sets[i % 5][:4], row_sets[i * 7 % 5][4], row_sets[i % 3][5]) for i in range(600)]
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n, m)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        stored = conn.execute("SELECT * FROM t").fetchall()
    names = ["i", "r", "s", "b", "n", "m"]
    table = SQLiteTable(path, "t", fetch_rows=256)
    for null in NULLS:
        stream = table.open()
        try:
            body = "".join(csv_pieces(stream, lambda: "", null))
        finally:
            stream.close()
        assert body == ",".join(names) + "\r\n" + _csv_cell_by_cell(stored, null), null
    stream = table.open()
    try:
        body = "".join(ndjson_pieces(stream, lambda: ""))
    finally:
        stream.close()
    assert body == _ndjson_cell_by_cell(names, stored)
