"""Every source's values become the same text: the batch formatter agrees with format_value."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tablestream.sources.cells import format_batch, format_value
from tablestream.sources.sqlite import SQLiteTable


class _Custom:
    def __str__(self) -> str:
        return "custom"


ROW = (
    "text",
    7,
    True,
    1.5,
    Decimal("12345678901234567890.000001"),
    dt.datetime(2024, 2, 29, 23, 59, 58),
    dt.date(2024, 2, 29),
    dt.time(1, 2, 3),
    b"\x00\xff",
    None,
    {"a": [1, "é"]},
    [1, 2],
    _Custom(),
)


def test_batch_formatting_equals_cell_by_cell_formatting_for_every_type():
    assert format_batch([ROW, ROW]) == [tuple(format_value(v) for v in ROW)] * 2


def test_values_are_rendered_as_users_read_them():
    text = format_batch([ROW])[0]
    assert text[:5] == ("text", "7", "true", "1.5", "12345678901234567890.000001")
    assert text[5:10] == ("2024-02-29 23:59:58", "2024-02-29", "01:02:03", "\\x00ff", "")
    assert text[10:] == ('{"a": [1, "é"]}', "[1, 2]", "custom")


def test_columns_of_mixed_types_and_ragged_rows_are_formatted_cell_by_cell():
    batch = [(1, "a", None), ("x", 2.5, dt.date(2024, 1, 2)), (True, b"\x01", Decimal("1.10"))]
    assert format_batch(batch) == [tuple(format_value(v) for v in row) for row in batch]
    ragged = [(1, 2), (3,), ("a", None, 4)]
    assert format_batch(ragged) == [tuple(format_value(v) for v in row) for row in ragged]
    assert format_batch([]) == []


_VALUES = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
    st.binary(),
)


@given(
    st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=6).flatmap(
        lambda kinds: st.lists(
            st.tuples(*[[_VALUES, st.integers(), st.none() | st.text()][k] for k in kinds]),
            min_size=1,
            max_size=20,
        )
    )
)
def test_column_at_a_time_formatting_equals_cell_by_cell_formatting(batch):
    assert format_batch(batch) == [tuple(format_value(v) for v in row) for row in batch]


def test_a_sqlite_table_streams_every_storage_class_as_the_cell_formatter_writes_it(tmp_path):
    path = tmp_path / "types.sqlite3"
    rows = [
        (1, 1.5, "text", b"\x00\xff", None, 7),
        (-(2**63), 0.1 + 0.2, "", b"", None, 2.5),
        (2**63 - 1, 1e20, "Zoë <&>", b"\x01", None, "mixed"),
        (0, -0.0, "\x1f\x1e", b"\x10", None, None),
        (None, None, None, None, None, b"\x02"),
    ] * 100
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n, m)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        stored = conn.execute("SELECT * FROM t").fetchall()
    stream = SQLiteTable(path, "t", fetch_rows=64).open()
    try:
        streamed = [row for batch in stream.batches() for row in batch]
    finally:
        stream.close()
    assert streamed == [tuple(format_value(v) for v in row) for row in stored]
