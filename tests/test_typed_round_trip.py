"""What programs read back: every value and every NULL of a real SQLite file and a real
PostgreSQL table, through typed NDJSON and CSV with ``null=``, read by real consumers — the
json and csv modules, pandas, and PostgreSQL's own ``COPY … FROM … CSV``.

The round trip: value → NDJSON → ``json.loads`` gives the same Python value (NULL → None);
where JSON has no such type the stated string form (docs/formats.md) decodes to it exactly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablestream import ConfigError, create_app
from tablestream.sources.cells import format_value
from tablestream.stream.csvnulls import csv_batch_writer
from tablestream.stream.ndjson import batch_encoder
from tablestream.testing import httpraw

from .pg import DSN, admin_connection, scratch_schema

SQLITE_ROWS = [
    # id, i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, d DATE, x (no type: any value)
    (1, 0, 0.1, "", b"", 1, "2024-02-29", 1),
    (2, -(2**63), 1e300, 'quote " comma , line\nbreak\ttab', b"\x00\xff", 1.5, "", "text"),
    (3, 2**63 - 1, float("inf"), "ünï ✓ 表 \\ </b>", bytes(range(7)), "12.30", None, 2.5),
    (4, 42, float("-inf"), "\\N", b"x", None, "2024-01-01 10:00:00", b"\x01\x02"),
    (5, None, None, None, None, None, None, None),
    (6, 7, -0.0, "NULL", b"NULL", "abc", "x", ""),
    (7, -1, 1e-7, "%s %(x)s {0}", None, 0, "0001-01-01", 2**62),
]


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("typed") / "typed.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE every_type (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, "
            "b BLOB, n NUMERIC, d DATE, x)"
        )
        db.executemany("INSERT INTO every_type VALUES (?, ?, ?, ?, ?, ?, ?, ?)", SQLITE_ROWS)
    db.close()
    return path


@pytest.fixture
def sqlite_server(thread_server, sqlite_file):
    return thread_server(create_app({"db": str(sqlite_file), "synthetic_rows": "0"}))


def _stored(db: Path, table: str = "every_type") -> tuple[list[str], list[tuple]]:
    """The rows as SQLite itself hands them to Python (its storage classes, NULL as None)."""
    with sqlite3.connect(db) as conn:
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY id")
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description]
    conn.close()
    return names, rows


SQLITE_DATETIMES = frozenset({"d"})
"""The columns of ``every_type`` declared a date/time type (``DATE``)."""
_SQLITE_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")


def _as_json(value: Any, datetime_column: bool = False) -> Any:
    """What typed NDJSON promises a value becomes after ``json.loads`` (docs/formats.md); in
    a SQLite column declared a date/time type, text in SQLite's datetime() form has a T."""
    if datetime_column and isinstance(value, str) and _SQLITE_DATETIME.fullmatch(value):
        return value.replace(" ", "T")
    if value is None or isinstance(value, bool | int | str | dict | list):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):  # a number, its exact text; NaN/Infinity as float's strings
        if not value.is_finite():
            return format(value, "f")
        whole = len(str(abs(int(value))))  # over 18 digits before the point: 1.5e+21
        return json.loads(format(value, "e" if whole > 18 else "f"))
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return format_value(value)  # interval and other types: the page's text


def _decoded(got: Any, like: Any) -> Any:
    """The stated string form read back into the type of ``like``: the round trip's far end."""
    if got is None or like is None or isinstance(like, bool | int | str | dict | list):
        return got
    if isinstance(like, float):
        return float(got)  # "NaN" / "Infinity" / "-Infinity" are float()'s spellings too
    decode = {
        Decimal: Decimal,
        bytes: lambda s: bytes.fromhex(s.removeprefix("\\x")),
        dt.datetime: dt.datetime.fromisoformat,
        dt.date: dt.date.fromisoformat,
        dt.time: dt.time.fromisoformat,
        uuid.UUID: uuid.UUID,
    }.get(type(like))
    return got if decode is None else decode(got)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal) and a.is_nan():
        return isinstance(b, Decimal) and b.is_nan()
    return a == b and type(a) is type(b)


def _check_ndjson(
    text: str, names: list[str], rows: list[tuple], datetimes: frozenset[str] = frozenset()
) -> None:
    lines = text.splitlines()
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows, strict=True):
        got = json.loads(line)
        exact = json.loads(line, parse_float=Decimal, parse_int=Decimal)  # a decimal's reader
        assert list(got) == names
        assert got == {n: _as_json(v, n in datetimes) for n, v in zip(names, row, strict=True)}, (
            line
        )
        for name, value in zip(names, row, strict=True):
            if isinstance(value, dt.timedelta):  # stated as the page's text, not decoded
                continue
            if name in datetimes and isinstance(value, str):  # the T is the only change
                back = got[name].replace("T", " ") if "T" in got[name] else got[name]
            elif isinstance(value, Decimal):
                back = Decimal(exact[name])  # every digit; "NaN" a string Decimal reads
            else:
                back = _decoded(got[name], value)
            assert _same(value, back), (name, value, back)


def test_sqlite_values_come_back_from_ndjson_as_the_same_python_values(sqlite_server, sqlite_file):
    names, rows = _stored(sqlite_file)
    response = httpraw.get(f"{sqlite_server.url}/tables/every_type.ndjson")
    assert response.status == 200 and response.terminated
    _check_ndjson(response.text, names, rows, SQLITE_DATETIMES)


def test_pandas_reads_sqlite_ndjson_with_the_values_and_nulls(sqlite_server, sqlite_file):
    names, rows = _stored(sqlite_file)
    text = httpraw.get(f"{sqlite_server.url}/tables/every_type.ndjson").text
    frame = pd.read_json(
        io.StringIO(text), lines=True, dtype_backend="numpy_nullable", precise_float=True
    )
    assert list(frame.columns) == names
    for got, row in zip(frame.to_dict("records"), rows, strict=True):
        for name, value in zip(names, row, strict=True):
            cell = got[name]
            if value is None:
                assert pd.isna(cell), (name, cell)
            else:
                expected = _as_json(value, name in SQLITE_DATETIMES)
                assert not pd.isna(cell) and _pandas_equal(cell, expected), (name, cell)


def _pandas_equal(cell: Any, expected: Any) -> bool:
    """pandas' JSON reader holds an integer column with a null as float64 (whatever dtype is
    asked for), so an int64 beyond 2**53 there arrives rounded: a limit of the reader, which
    the json module's test above does not have."""
    if isinstance(expected, int) and isinstance(cell, float):
        return cell == float(expected)
    return cell == expected


def _csv_rows(text: str, null: str) -> list[list[str | None]]:
    """The csv module's rows with the NULL word read as None (it cannot see quotes)."""
    return [
        [None if cell == null else cell for cell in row]
        for row in csv.reader(io.StringIO(text, newline=""))
    ]


@pytest.mark.parametrize("null", ["\\N", "NULL"])
def test_csv_with_a_null_word_keeps_sqlites_nulls_apart_from_empty_text(
    sqlite_server, sqlite_file, null
):
    names, rows = _stored(sqlite_file)
    response = httpraw.get(f"{sqlite_server.url}/tables/every_type.csv?null={null}")
    assert response.status == 200
    expected = [[None if v is None else format_value(v) for v in row] for row in rows]
    got = _csv_rows(response.text, null)
    assert got[0] == names
    # A text cell that is the NULL word itself is quoted; the csv module cannot see that.
    assert got[1:] == [[None if c == null else c for c in row] for row in expected]
    assert f',"{null}",' in response.text
    frame = pd.read_csv(
        io.StringIO(response.text), keep_default_na=False, na_values=[null], dtype=str
    )
    for got_row, row in zip(frame.to_dict("records"), expected, strict=True):
        assert [None if pd.isna(v) else v for v in got_row.values()] == [
            None if c == null else c for c in row
        ]


_CELLS = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(), min_size=1, max_size=4, unique=True),
    st.data(),
)
def test_the_ndjson_encoder_gives_what_json_loads_reads_as_the_same_values(names, data):
    """Any names (quotes, ``%``, braces) and any mix of SQLite's value types, column by column."""
    width = len(names)
    rows = data.draw(st.lists(st.tuples(*[_CELLS] * width), min_size=1, max_size=6))
    text = batch_encoder(names, ["value"] * width)(rows)
    assert text.count("\n") == len(rows)
    # Lines end at "\n" only: str.splitlines() would also split at U+0085, U+2028, ... which
    # JSON leaves unescaped inside strings.
    for line, row in zip(text.split("\n")[:-1], rows, strict=True):
        assert json.loads(line) == {n: _as_json(v) for n, v in zip(names, row, strict=True)}


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text()),
            st.one_of(
                st.none(),
                st.sampled_from(["2024-01-02 03:04:05", "infinity", "0044-03-15 12:00:00 BC"]),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_server_text_columns_are_json_strings_and_timestamps_iso_with_a_t(rows):
    text = batch_encoder(["t", "ts"], ["text", "timestamp"])(rows)
    for line, (t, ts) in zip(text.split("\n")[:-1], rows, strict=True):
        assert json.loads(line) == {"t": t, "ts": ts and ts.replace(" ", "T", 1)}


_CSV_TEXT = st.text(alphabet=st.sampled_from(',"\r\nab \\N表\x1f'), max_size=6)


def _csv_module(rows: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=1, max_value=3), st.data())
def test_csv_by_default_is_the_csv_modules_bytes_for_any_cells(width, data):
    """The default CSV (``null=empty``) is written a column at a time, byte for byte what the
    csv module writes: empty cells, one-column rows, ragged rows included."""
    rows = data.draw(st.lists(st.lists(_CSV_TEXT, min_size=width, max_size=width), max_size=5))
    ragged = data.draw(st.lists(st.lists(_CSV_TEXT, min_size=1, max_size=3), max_size=3))
    write = csv_batch_writer(["text"] * width, "empty")
    assert write(rows) == _csv_module(rows)
    assert write(ragged) == _csv_module(ragged)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=3),
    st.sampled_from(["copy", "\\N", "NULL"]),
    st.data(),
)
def test_csv_with_null_kept_quotes_every_other_cell_as_the_csv_module_does(width, null, data):
    """Cells that are not NULL and not the NULL spelling are the csv module's own bytes."""
    marker = "" if null == "copy" else null
    rows = data.draw(st.lists(st.lists(_CSV_TEXT, min_size=width, max_size=width), max_size=5))
    rows = [row for row in rows if marker not in row]
    assert csv_batch_writer(["text"] * width, null)(rows) == _csv_module(rows)


def test_csv_copy_convention_writes_null_unquoted_and_the_empty_string_quoted(sqlite_server):
    text = httpraw.get(f"{sqlite_server.url}/tables/every_type.csv?null=copy&_cols=id,t").text
    lines = text.split("\r\n")
    assert lines[1] == '1,""' and lines[5] == "5,"


def test_csv_by_default_is_todays_bytes_and_a_bad_null_option_is_a_400(sqlite_server):
    plain = httpraw.get(f"{sqlite_server.url}/tables/every_type.csv").body
    assert httpraw.get(f"{sqlite_server.url}/tables/every_type.csv?null=empty").body == plain
    assert b"5,,,,,,,\r\n" in plain and b"1,0,0.1,,\\x,1,2024-02-29,1\r\n" in plain
    for option in ("null=none", "null=", "decimals=float", "null=copy&null=copy"):
        response = httpraw.get(f"{sqlite_server.url}/tables/every_type.csv?{option}")
        assert response.status == 400, option
        assert "expected one of" in response.text


def test_the_csv_null_setting_is_the_default_a_request_can_override(thread_server, sqlite_file):
    app = create_app({"db": str(sqlite_file), "synthetic_rows": "0", "csv_null": "copy"})
    server = thread_server(app)
    assert httpraw.get(f"{server.url}/tables/every_type.csv?_cols=id,t").text.split("\r\n")[1] == (
        '1,""'
    )
    assert httpraw.get(f"{server.url}/tables/every_type.csv?_cols=id,t&null=empty").text.split(
        "\r\n"
    )[1] == ("1,")


# -- a CSV file: text, unless a sidecar (orders.csv-metadata.json, CSV on the Web) types it

CSV_FILE = (
    "id,price,amount,ok,day,at,name\r\n"
    "1,530.99,0.10,true,2024-02-29,2024-05-06 07:08:09,\r\n"
    "2,,1e3,0,,,x\r\n"
    '007,-1.,n/a,maybe,soon,later,"a,b"\r\n'
)
SIDECAR = {
    "tableSchema": {
        "columns": [
            {"name": "id", "datatype": "integer"},
            {"name": "price", "datatype": "decimal"},
            {"name": "amount", "datatype": "double"},
            {"name": "ok", "datatype": "boolean"},
            {"name": "day", "datatype": "date"},
            {"name": "at", "datatype": "datetime"},
        ]
    }
}


def _csv_app(tmp_path: Path, sidecar: object | None) -> Any:
    path = tmp_path / "items.csv"
    path.write_text(CSV_FILE, newline="")
    if sidecar is not None:
        (tmp_path / "items.csv-metadata.json").write_text(json.dumps(sidecar))
    return create_app({"db": "", "synthetic_rows": "0", "csv": f"items={path}"})


def test_a_csv_file_is_text_in_ndjson_without_a_sidecar(thread_server, tmp_path):
    server = thread_server(_csv_app(tmp_path, None))
    first = json.loads(httpraw.get(f"{server.url}/tables/items.ndjson").text.splitlines()[0])
    assert first == dict(zip(CSV_FILE.split("\r\n")[0].split(","), ["1", "530.99", "0.10",
                     "true", "2024-02-29", "2024-05-06 07:08:09", ""], strict=True))  # fmt: skip


def test_a_csv_sidecar_types_the_columns_in_ndjson_and_describes_them(thread_server, tmp_path):
    server = thread_server(_csv_app(tmp_path, SIDECAR))
    lines = httpraw.get(f"{server.url}/tables/items.ndjson").text.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "price": 530.99, "amount": 0.1, "ok": True, "day": "2024-02-29",
         "at": "2024-05-06T07:08:09", "name": ""},
        {"id": 2, "price": None, "amount": 1000.0, "ok": False, "day": None, "at": None,
         "name": "x"},
        # Not of the type: 007 and -1. are numbers JSON spells otherwise; the rest stay text.
        {"id": 7, "price": -1, "amount": "n/a", "ok": "maybe", "day": "soon", "at": "later",
         "name": "a,b"},
    ]  # fmt: skip
    assert '"price":530.99,' in lines[0] and '"price":-1,' in lines[2]  # the file's digits
    strings = httpraw.get(f"{server.url}/tables/items.ndjson?decimals=string").text
    assert [json.loads(line)["price"] for line in strings.splitlines()] == ["530.99", None, "-1."]
    copy = httpraw.get(f"{server.url}/tables/items.csv?null=copy").text.split("\r\n")
    assert copy[1] == '1,530.99,0.10,true,2024-02-29,2024-05-06 07:08:09,""'
    assert copy[2] == "2,,1e3,0,,,x"  # typed columns' empty cells are NULL, unquoted
    described = json.loads(httpraw.get(f"{server.url}/tables/items.json").body)
    assert [(c["type"], c["source_type"]) for c in described["columns"]] == [
        ("integer", "integer"), ("numeric", "decimal"), ("real", "double"), ("text", "boolean"),
        ("text", "date"), ("text", "datetime"), ("text", None),
    ]  # fmt: skip
    assert httpraw.get(f"{server.url}/tables/items.csv?price__gt=100").text.count("\r\n") == 2


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"tableSchema": {"columns": [{"name": "nope", "datatype": "integer"}]}}, "nope"),
        ({"tableSchema": {"columns": [{"name": "id", "datatype": "int"}]}}, "expected one of"),
        ({"columns": []}, "is not a sidecar of column types"),
    ],
)
def test_a_wrong_csv_sidecar_stops_start_up_saying_what_is_wrong(tmp_path, sidecar, message):
    with pytest.raises(ConfigError, match=message):
        _csv_app(tmp_path, sidecar)


# -- PostgreSQL: every supported type, in a time zone with a half-hour offset. (JSON scalars are
# left out: psycopg loads a JSON null as None, SQL's NULL, and the page shows a JSON string
# without its quotes, so neither would survive COPY; docs/formats.md says so.)

ZONE = "Asia/Kolkata"
PG_TYPES = {
    "i2": ("int2", ["-32768", "32767"]),
    "i4": ("int4", ["-2147483648", "7"]),
    "i8": ("int8", ["-9223372036854775808", "9223372036854775807"]),
    "f4": ("float4", ["0.1", "'NaN'", "'-Infinity'", "3.4e38"]),
    "f8": ("float8", ["0.1", "'NaN'", "'Infinity'", "'-Infinity'", "1e16", "-0", "1e-7"]),
    "n": ("numeric", ["'-1.50'", "'NaN'", "'123456789012345678901234567890.123456789'", "1e30"]),
    "n2": ("numeric(12, 2)", ["530.99", "0"]),
    "b": ("bool", ["true", "false"]),
    "t": ("text", ["''", "E'line\\nbreak \"q\", \\\\'", "'\\N'", "'ü 表'"]),
    "v": ("varchar(20)", ["''", "'short'"]),
    "d": ("date", ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'"]),
    "tm": ("time", ["'01:02:03'", "'23:59:59.5'"]),
    "ts": ("timestamp", ["'2024-05-06 07:08:09'", "'2024-05-06 07:08:09.000001'"]),
    "tz": ("timestamptz", ["'2024-05-06 07:08:09+00'", "'1970-06-01 12:00:00.5-03:30'"]),
    "iv": ("interval", ["'1 day 02:00'", "'00:00:00.000001'"]),
    "by": ("bytea", ["''", "'\\x00ff10'"]),
    "js": ("json", ['\'{"b": 1, "a": [1, 2.5, null]}\'', "'[]'"]),
    "jb": ("jsonb", ['\'{"b": 1, "a": [1, 2.5, "s"]}\'', "'[1, \"s\"]'"]),
    "u": ("uuid", ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"]),
}


@pytest.fixture(scope="module")
def pg_table() -> Iterator[str]:
    with scratch_schema("programs") as (admin, schema):
        defs = ", ".join(f"{name} {kind}" for name, (kind, _) in PG_TYPES.items())
        admin.execute(f"CREATE TABLE {schema}.every_type (id int PRIMARY KEY, {defs})")
        admin.execute(f"INSERT INTO {schema}.every_type (id) VALUES (0)")  # every column NULL
        for i in range(max(len(values) for _, values in PG_TYPES.values())):
            names = [n for n, (_, v) in PG_TYPES.items() if i < len(v)]
            values = [PG_TYPES[n][1][i] for n in names]
            admin.execute(
                f"INSERT INTO {schema}.every_type (id, {', '.join(names)}) "
                f"VALUES ({i + 1}, {', '.join(values)})"
            )
        yield schema


def _pg_dsn() -> str:
    return f"{DSN} options='-c TimeZone={ZONE}'"


@pytest.fixture(scope="module")
def pg_app(pg_table):
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": _pg_dsn(),
            "pg_tables": f"{pg_table}.every_type",
        }
    )
    yield app
    app.extensions["tablestream"].catalog["every_type"]._source.close()


@pytest.fixture
def pg_server(thread_server, pg_app):
    return thread_server(pg_app)


def _pg_rows(schema: str, table: str = "every_type") -> tuple[list[str], list[tuple]]:
    """The rows as psycopg loads them, in the service's time zone."""
    with psycopg.connect(_pg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {schema}.{table} ORDER BY id")
        return [d.name for d in cur.description or []], cur.fetchall()


pg = pytest.mark.postgres


@pg
@pytest.mark.parametrize("query", ["", "?id__gte=0", "?limit=100"])
def test_postgresql_values_come_back_from_ndjson_as_the_same_python_values(
    pg_server, pg_table, query
):
    names, rows = _pg_rows(pg_table)
    response = httpraw.get(f"{pg_server.url}/tables/every_type.ndjson{query}")
    assert response.status == 200 and response.terminated
    _check_ndjson(response.text, names, rows)


@pg
def test_postgresql_decimals_as_numbers_keep_every_digit_for_a_decimal_parser(pg_server, pg_table):
    names, rows = _pg_rows(pg_table)
    text = httpraw.get(f"{pg_server.url}/tables/every_type.ndjson?decimals=number&_cols=id,n").text
    assert '"n":-1.50' in text and '"n":"NaN"' in text
    got = [
        json.loads(line, parse_float=Decimal, parse_int=Decimal)["n"] for line in text.splitlines()
    ]
    expected = [row[names.index("n")] for row in rows]
    for value, back in zip(expected, got, strict=True):
        assert _same(value, back if not isinstance(back, str) else Decimal(back)), (value, back)


@pg
def test_pandas_reads_postgresql_ndjson_with_the_values_and_nulls(pg_server, pg_table):
    names, rows = _pg_rows(pg_table)
    text = httpraw.get(f"{pg_server.url}/tables/every_type.ndjson").text
    frame = pd.read_json(
        io.StringIO(text), lines=True, dtype_backend="numpy_nullable", precise_float=True
    )
    assert list(frame.columns) == names
    for got, row in zip(frame.to_dict("records"), rows, strict=True):
        for name, value in zip(names, row, strict=True):
            cell = got[name]
            if value is None:
                assert cell is None or (not isinstance(cell, dict | list) and pd.isna(cell))
            elif isinstance(value, dict | list | str) or name in ("jb", "js"):
                assert cell == _as_json(value), (name, cell, value)
            elif isinstance(value, int):
                assert _pandas_equal(cell, value), (name, cell, value)
            elif isinstance(value, Decimal) and value.is_finite():
                # A number to a float reader: the nearest float (docs/formats.md: decimals=string
                # for readers that must not round), never "Value is too big!" for a long one.
                assert cell == float(value), (name, cell, value)
            else:
                assert _same(_decoded(cell, value), value) or isinstance(value, dt.timedelta)


@pg
def test_postgresql_reads_back_its_own_table_from_csv_with_the_copy_convention(pg_server, pg_table):
    """``COPY … FROM … CSV`` of the service's ``null=copy`` CSV gives the same table: every
    NULL still NULL, every empty string still empty (compared as each row's text)."""
    body = httpraw.get(f"{pg_server.url}/tables/every_type.csv?null=copy").body
    admin = admin_connection()
    try:
        clone = f"{pg_table}.clone"
        admin.execute(f"CREATE TABLE {clone} (LIKE {pg_table}.every_type)")
        with admin.cursor() as cur:
            with cur.copy(f"COPY {clone} FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(body)
            original = cur.execute(f"SELECT t::text FROM {pg_table}.every_type t ORDER BY id")
            before = original.fetchall()
            after = cur.execute(f"SELECT t::text FROM {clone} t ORDER BY id").fetchall()
    finally:
        admin.close()
    assert len(after) == len(before) > 5 and after == before


@pg
def test_pandas_reads_postgresql_csv_with_the_null_word(pg_server, pg_table):
    names, rows = _pg_rows(pg_table)
    text = httpraw.get(f"{pg_server.url}/tables/every_type.csv?null=NULL").text
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=["NULL"], dtype=str)
    assert list(frame.columns) == names
    for got, row in zip(frame.to_dict("records"), rows, strict=True):
        assert [None if pd.isna(v) else v for v in got.values()] == [
            None if v is None else format_value(v) for v in row
        ]
