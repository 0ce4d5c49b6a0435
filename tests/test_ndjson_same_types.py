"""Typed NDJSON writes the same JSON types for the same column types whatever the source.

Issue 33: the demo ``orders`` gave ``"placed_at":"2023-01-01 00:00:46"`` from SQLite and
``"2023-01-01T00:00:46"`` from PostgreSQL, ``"total":530.99`` from SQLite and
``"total":"530.99"`` from PostgreSQL. Here the demo is loaded into both real databases (the
PostgreSQL one by ``tablestream demo-db --dsn``, into a scratch schema) and served by real
waitress servers; the rows must read back equal, value and JSON type. The rule that makes the
SQLite side agree (a column declared a date/time type writes text in SQLite's ``datetime()``
form with a ``T``, and only that text) is checked on a real SQLite file and, for any cells, on
the encoder against the ``value`` kind it refines.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablestream import create_app
from tablestream.sources.demo import create_demo_db
from tablestream.sources.sqlite import is_datetime_type
from tablestream.stream.ndjson import batch_encoder
from tablestream.testing import httpraw

from .pg import DSN, cli_demo_schema

ORDERS, CUSTOMERS = 400, 60
ISO_SECOND = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
SQLITE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")
"""SQLite's ``datetime()`` text, optionally with fractions (``strftime('%f')``): the only text
the rewrite touches."""


def _json_types(row: dict[str, Any]) -> dict[str, str]:
    """Each value's JSON type as a reader sees it (``int`` and ``float`` both numbers)."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}
    return {key: names[type(value)] for key, value in row.items()}


def _rows(url: str) -> list[dict[str, Any]]:
    response = httpraw.get(url)
    assert response.status == 200 and response.terminated
    return [json.loads(line) for line in response.text.split("\n")[:-1]]


@pytest.fixture(scope="module")
def demo_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_demo_db(
        tmp_path_factory.mktemp("same") / "demo.sqlite3", rows=ORDERS, customers=CUSTOMERS
    )


@pytest.fixture(scope="module")
def demo_schema() -> Iterator[str]:
    """The demo loaded by the real CLI into a scratch schema (its search_path)."""
    with cli_demo_schema("samejson", ORDERS, CUSTOMERS) as (_, schema):
        yield schema


@pytest.fixture
def pg_demo_server(thread_server, demo_schema):
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": DSN,
            "pg_tables": f"{demo_schema}.orders,{demo_schema}.customers",
        }
    )
    yield thread_server(app)
    for name in ("orders", "customers"):
        app.extensions["tablestream"].catalog[name]._source.close()


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["orders", "customers"])
def test_the_demo_tables_read_back_equal_with_the_same_json_types_from_sqlite_and_postgresql(
    thread_server, demo_sqlite, pg_demo_server, table
):
    sqlite_server = thread_server(create_app({"db": str(demo_sqlite), "synthetic_rows": "0"}))
    from_sqlite = _rows(f"{sqlite_server.url}/tables/{table}.ndjson")
    from_pg = _rows(f"{pg_demo_server.url}/tables/{table}.ndjson?_sort=id")
    assert len(from_sqlite) == {"orders": ORDERS, "customers": CUSTOMERS}[table]
    assert from_sqlite == from_pg
    assert list(map(_json_types, from_sqlite)) == list(map(_json_types, from_pg))
    stamp = "placed_at" if table == "orders" else "signed_up"
    assert all(ISO_SECOND.fullmatch(row[stamp]) for row in from_sqlite + from_pg)
    if table == "orders":
        assert {type(row["total"]) for row in from_sqlite + from_pg} == {float}
        described = json.loads(httpraw.get(f"{sqlite_server.url}/tables/orders.json").body)
        declared = {c["name"]: c["source_type"] for c in described["columns"]}
        assert declared["placed_at"] == "TIMESTAMP TEXT"  # TEXT affinity: filters compare text


@pytest.mark.postgres
def test_postgresql_numeric_is_a_number_by_default_and_a_string_on_request(pg_demo_server):
    url = f"{pg_demo_server.url}/tables/orders.ndjson?_sort=id&limit=3&_cols=id,total"
    numbers = httpraw.get(url).text.split("\n")[:-1]
    strings = httpraw.get(url + "&decimals=string").text.split("\n")[:-1]
    for number, string in zip(numbers, strings, strict=True):
        exact = json.loads(number, parse_float=Decimal)["total"]
        assert isinstance(exact, Decimal) and exact.as_tuple().exponent == -2  # "12.30" kept
        assert json.loads(string)["total"] == format(exact, "f")


def test_the_decimals_setting_is_the_default_a_request_can_override(thread_server, tmp_path):
    (tmp_path / "items.csv").write_text("id,price\r\n1,530.99\r\n2,1000000000000000000000.5\r\n")
    (tmp_path / "items.csv-metadata.json").write_text(
        json.dumps({"tableSchema": {"columns": [{"name": "price", "datatype": "decimal"}]}})
    )
    base = {"db": "", "synthetic_rows": "0", "csv": f"items={tmp_path / 'items.csv'}"}
    default = thread_server(create_app(base)).url + "/tables/items.ndjson"
    strings = thread_server(create_app({**base, "ndjson_decimals": "string"})).url
    strings += "/tables/items.ndjson"
    assert httpraw.get(default).text == (
        '{"id":"1","price":530.99}\n{"id":"2","price":1.0000000000000000000005e+21}\n'
    )  # more than 18 digits before the point: scientific notation, every digit kept
    assert httpraw.get(strings).text == (
        '{"id":"1","price":"530.99"}\n{"id":"2","price":"1000000000000000000000.5"}\n'
    )
    assert httpraw.get(strings + "?decimals=number").text == httpraw.get(default).text
    assert httpraw.get(default + "?decimals=string").text == httpraw.get(strings).text


STORED = [
    "2024-05-06 07:08:09",
    "2024-05-06 07:08:09.123",
    "2024-05-06",
    "2024-05-06T07:08:09",
    "2024-05-06 07:08",
    "2024-05-06 07:08:09+02:00",
    "yesterday at noon",
]


@pytest.fixture(scope="module")
def declared_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cells under every kind of declared type, a NULL and a number among them."""
    path = tmp_path_factory.mktemp("declared") / "declared.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a DATETIME, b timestamp(3), c Date, "
            "d TEXT, e, f VARCHAR(30))"
        )
        rows = [(i, *[v] * 5, v) for i, v in enumerate([*STORED, None, 1714979289])]
        db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    return path


def test_sqlite_text_in_datetime_form_gets_a_t_only_in_columns_declared_date_or_time(
    thread_server, declared_file
):
    with sqlite3.connect(declared_file) as db:  # what SQLite hands Python (affinity applied)
        stored = db.execute("SELECT a, b, c, d, e, f FROM t ORDER BY id").fetchall()
    db.close()
    server = thread_server(create_app({"db": str(declared_file), "synthetic_rows": "0"}))
    rows = _rows(f"{server.url}/tables/t.ndjson")
    assert len(rows) == len(stored) == len(STORED) + 2
    for row, cells in zip(rows, stored, strict=True):
        iso = [c.replace(" ", "T") if c in STORED[:2] else c for c in cells[:3]]
        assert [row["a"], row["b"], row["c"]] == iso, row
        assert [row["d"], row["e"], row["f"]] == list(cells[3:]), row
    assert rows[-1]["a"] == 1714979289 and rows[-1]["d"] == "1714979289"  # affinities kept
    picked = _rows(f"{server.url}/tables/t.ndjson?_cols=b,d&id__lte=1")
    assert picked == [
        {"b": "2024-05-06T07:08:09", "d": "2024-05-06 07:08:09"},
        {"b": "2024-05-06T07:08:09.123", "d": "2024-05-06 07:08:09.123"},
    ]


@pytest.mark.parametrize("null", ["empty", "copy"])
def test_csv_and_the_page_keep_the_stored_datetime_text(thread_server, declared_file, null):
    server = thread_server(create_app({"db": str(declared_file), "synthetic_rows": "0"}))
    lines = httpraw.get(f"{server.url}/tables/t.csv?null={null}").text.split("\r\n")
    assert lines[1] == "0," + ",".join(["2024-05-06 07:08:09"] * 6)
    assert lines[2] == "1," + ",".join(["2024-05-06 07:08:09.123"] * 6)
    page = httpraw.get(f"{server.url}/tables/t").text
    assert page.count(">2024-05-06 07:08:09<") == 6
    assert page.count(">2024-05-06T07:08:09<") == 6  # only the row stored with a T


@pytest.mark.parametrize(
    ("declared", "is_datetime"),
    [
        ("DATETIME", True),
        ("datetime", True),
        ("TIMESTAMP", True),
        ("TIMESTAMP TEXT", True),
        ("timestamp(3)", True),
        ("timestamp with time zone", True),
        ("Date", True),
        ("TEXT", False),
        ("", False),
        ("DATETIMEOFFSET", False),
        ("MYDATE", False),
        ("TIME", False),
        ("VARCHAR(19)", False),
    ],
)
def test_a_column_is_a_date_or_time_by_the_first_word_of_its_declared_type(declared, is_datetime):
    assert is_datetime_type(declared) is is_datetime


_NEAR = st.one_of(
    st.datetimes().map(lambda d: d.isoformat(" ")),
    st.datetimes().map(lambda d: d.isoformat(" ", "milliseconds")),
    st.datetimes().map(lambda d: d.isoformat("T")),
    st.datetimes().map(lambda d: d.isoformat(" ") + "Z"),
    st.datetimes().map(lambda d: " " + d.isoformat(" ")),
    st.datetimes().map(lambda d: d.isoformat(" ").replace("-", "\n", 1)),
    st.datetimes().map(lambda d: d.isoformat(" ").replace("0", "\u0660")),  # Arabic-Indic 0
    st.datetimes().map(lambda d: d.isoformat(" ")[:16]),
    st.dates().map(str),
    st.text(alphabet='0123456789-: .T\n"\\', max_size=24),
)
_CELLS = st.one_of(_NEAR, st.none(), st.integers(), st.floats(), st.text(), st.binary(max_size=4))


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_CELLS, _CELLS), min_size=1, max_size=8), st.booleans())
def test_only_sqlites_exact_datetime_text_is_rewritten_and_everything_else_as_value(
    rows, same_form
):
    """Any column, every cell in the form (the one-regex path) or any mix: a cell in SQLite's
    exact form gets its T, every other cell is written byte for byte as the ``value`` kind
    writes it (the kind SQLite's other columns have)."""
    if same_form:  # a column wholly in the form, as a real DATETIME column mostly is
        start = dt.datetime(2000, 1, 1)
        rows = [(str(start + dt.timedelta(seconds=i)), b) for i, (_, b) in enumerate(rows)]
    names = ["at", "other"]
    text = batch_encoder(names, ["sqlite:timestamp", "value"])(rows)
    plain = batch_encoder(names, ["value", "value"])(rows)
    lines = zip(text.split("\n")[:-1], plain.split("\n")[:-1], rows, strict=True)
    for line, plain_line, (at, _) in lines:
        if isinstance(at, str) and SQLITE_FORM.fullmatch(at):
            assert json.loads(line)["at"] == at.replace(" ", "T")
            assert line.replace(at.replace(" ", "T"), at, 1) == plain_line
        else:
            assert line == plain_line


def test_a_year_filter_on_the_demo_timestamps_compares_them_as_text(client, demo_db):
    """The demo declares its times TIMESTAMP TEXT: typed as timestamps in NDJSON, but with TEXT
    affinity, so a filter value that looks like a number (a year) is compared as text, as
    before; plain TIMESTAMP (NUMERIC affinity) compared 2024 as a number and matched nothing."""
    with sqlite3.connect(demo_db) as conn:
        expected = conn.execute("SELECT count(*) FROM orders WHERE placed_at < '2024'").fetchone()[
            0
        ]
    assert expected > 0
    body = client.get(f"/tables/orders.csv?placed_at__lt=2024&limit={expected + 10}")
    assert len(body.get_data(as_text=True).splitlines()) == expected + 1  # and the header
