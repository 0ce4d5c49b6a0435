"""Every source's values become the same text: the batch formatter agrees with format_value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from service.sources.cells import format_batch, format_value


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
