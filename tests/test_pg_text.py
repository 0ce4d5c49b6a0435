"""PostgreSQL's own text for a cell equals what the Python formatter made of the loaded value.

For every column type: the rows as the service used to read them (psycopg's loaders, then
``cells.format_value`` cell by cell) against the rows a stream hands out now (text written by
the server where ``sources.pgtext`` knows how, ``format_batch`` for the rest), in session time
zones with half-hour, negative and seconds offsets. Needs the PostgreSQL of test_postgres.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg")

from .pg import DSN, scratch_schema  # noqa: E402

pytestmark = pytest.mark.postgres

from tablestream.sources.cells import format_value  # noqa: E402
from tablestream.sources.postgres import PostgresSource  # noqa: E402

# Types the server writes as text: (column type, values as SQL literals). Every table gets a
# row of NULLs too.
SERVER_TEXT = {
    "i2": ("int2", ["-32768", "0", "32767"]),
    "i4": ("int4", ["-2147483648", "7", "2147483647"]),
    "i8": ("int8", ["-9223372036854775808", "9223372036854775807", "0"]),
    "o": ("oid", ["0", "4294967295", "12"]),
    "n": (
        "numeric",
        [
            "0",
            "-1.50",
            "123456789012345678901234567890.123456789",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0.00000000000000000001",
            "100",
            "1e30",
        ],
    ),
    "n2": ("numeric(12, 2)", ["530.99", "0", "-0.01"]),
    "t": ("text", ["''", "E'tab\\there'", "E'line\\nbreak'", "'<b>ü</b> & \"表\"'", "E'\\\\'"]),
    "v": ("varchar(20)", ["'short'", "''"]),
    "nm": ("name", ["'a name'"]),
    "b": ("bool", ["true", "false"]),
    "u": ("uuid", ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"]),
    "by": ("bytea", ["''", "'\\x00ff10'", "'\\xdeadbeef'"]),
    "d": ("date", ["'2024-02-29'", "'0099-01-01'", "'9999-12-31'", "'0001-01-01'"]),
    "ts": (
        "timestamp",
        [
            "'2024-05-06 07:08:09'",
            "'2024-05-06 07:08:09.5'",
            "'2024-05-06 07:08:09.000001'",
            "'0001-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999999'",
            "'1900-01-01 12:00'",
        ],
    ),
    "tz": (
        "timestamptz",
        [
            "'2024-05-06 07:08:09+00'",
            "'2024-05-06 07:08:09.25+05:30'",
            "'2024-01-01 00:00-03:30'",
            "'1900-01-01 12:00:00+00'",
            "'1970-06-01 12:00:00.5+00'",
            "'1850-03-04 05:06:07+00'",
            "'0002-01-01 00:00+00'",
            "'9999-01-01 00:00+00'",
        ],
    ),
}
# Types loaded and formatted in Python as before.
PYTHON_FORMATTED = {
    "f8": (
        "float8",
        [
            "1.0",
            "0.1",
            "1e20",
            "1e16",
            "123456789012345.0",
            "'NaN'",
            "'Infinity'",
            "'-0'",
            "0.30000000000000004",
            "1e-7",
        ],
    ),
    "f4": ("float4", ["0.1", "1.5", "3.4e38"]),
    "c": ("char(5)", ["'ab'", "'abcde'"]),
    "tm": ("time", ["'01:02:03'", "'01:02:03.5'"]),
    "ttz": ("timetz", ["'01:02:03+02'"]),
    "iv": ("interval", ["'1 day 02:00'", "'-3 months'"]),
    "js": ("json", ['\'{"b":1, "a":[1,2.50]}\'', "'\"x\"'"]),
    "jb": ("jsonb", ['\'{"b":1, "a":[1,2.50]}\'', "'null'"]),
    "ar": ("int4[]", ["'{1,2,3}'", "'{}'"]),
    "ip": ("inet", ["'192.168.0.1'", "'10.0.0.0/8'"]),
}
ZONES = ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Amsterdam", "Africa/Monrovia"]


def _create(conn: psycopg.Connection, table: str, columns: dict) -> None:
    rows = max(len(values) for _, values in columns.values())
    defs = ", ".join(f"{name} {kind}" for name, (kind, _) in columns.items())
    conn.execute(f"CREATE TABLE {table} (id int, {defs})")
    conn.execute(f"INSERT INTO {table} (id) VALUES (0)")  # every column NULL
    for i in range(rows):
        names = [n for n, (_, v) in columns.items() if i < len(v)]
        values = [columns[n][1][i] for n in names]
        conn.execute(
            f"INSERT INTO {table} (id, {', '.join(names)}) VALUES ({i + 1}, {', '.join(values)})"
        )


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with scratch_schema("ts_text") as (admin, name):
        _create(admin, f"{name}.server_text", SERVER_TEXT)
        _create(admin, f"{name}.every_type", {**SERVER_TEXT, **PYTHON_FORMATTED})
        admin.execute(
            f"CREATE TABLE {name}.beyond_python (d date, ts timestamp, tz timestamptz);"
            f"INSERT INTO {name}.beyond_python VALUES ('infinity', '-infinity', 'infinity'),"
            "('0044-03-15 BC', '10000-01-01 00:00', '0001-01-01 00:00:00+00 BC')"
        )
        admin.execute(
            f'CREATE TABLE {name}.odd_names ("a%s" int, "b%%" text, "c{{0}}" date, "d""q" bool);'
            f"INSERT INTO {name}.odd_names VALUES (1, 'x', '2024-01-02', true)"
        )
        yield name


def _dsn(zone: str) -> str:
    return f"{DSN} options='-c TimeZone={zone}'"


def _as_before(zone: str, table: str) -> list[tuple[str, ...]]:
    with psycopg.connect(_dsn(zone)) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    return [tuple(format_value(v) for v in row) for row in rows]


def _streamed(
    zone: str, schema: str, name: str, datestyle: str = ""
) -> tuple[list[tuple[str, ...]], bool]:
    dsn = (
        _dsn(zone)
        if not datestyle
        else f"{DSN} options='-c TimeZone={zone} -c DateStyle={datestyle}'"
    )
    source = PostgresSource(
        dsn, [f"{schema}.{name}"], fetch_rows=4, pool_min=0, pool_max=1, pool_timeout=5
    )
    try:
        stream = source.tables[0].open()
        try:
            rows = [tuple(row) for batch in stream.batches() for row in batch]
            return rows, stream._rows_are_text
        finally:
            stream.close()
    finally:
        source.close()


@pytest.mark.parametrize("zone", ZONES)
def test_server_written_text_equals_the_python_formatter_for_every_type(schema, zone):
    for table in ("server_text", "every_type"):
        streamed, _ = _streamed(zone, schema, table)
        streamed.sort(key=lambda row: int(row[0]))
        before = _as_before(zone, f"{schema}.{table}")
        assert len(streamed) == len(before) > 5
        for new, old in zip(streamed, before, strict=True):
            assert new == old


@pytest.mark.parametrize("datestyle", ["German,DMY", "SQL,MDY", "Postgres,DMY", "ISO,DMY"])
def test_dates_are_iso_whatever_the_sessions_datestyle(schema, datestyle):
    """Under ISO the server's own date text is used (no to_char per row); otherwise not.
    (Dates Python cannot hold are written as the session writes them, either way.)"""
    streamed, _ = _streamed("UTC", schema, "server_text", datestyle)
    assert sorted(streamed) == sorted(_streamed("UTC", schema, "server_text")[0])
    assert "2024-02-29" in str(streamed) and "2024-05-06 07:08:09.500000" in str(streamed)


def test_tables_of_common_types_need_no_python_formatting(schema):
    _, all_text = _streamed("UTC", schema, "server_text")
    assert all_text
    _, all_text = _streamed("UTC", schema, "every_type")
    assert not all_text


def test_dates_python_cannot_hold_are_shown_as_postgresql_writes_them(schema):
    rows, _ = _streamed("UTC", schema, "beyond_python")
    assert sorted(rows) == sorted(
        [
            ("infinity", "-infinity", "infinity"),
            ("0044-03-15 BC", "10000-01-01 00:00:00", "0001-01-01 00:00:00+00 BC"),
        ]
    )


def test_column_names_with_placeholders_braces_and_quotes_are_only_names(schema):
    rows, all_text = _streamed("UTC", schema, "odd_names")
    assert rows == [("1", "x", "2024-01-02", "true")] and all_text
