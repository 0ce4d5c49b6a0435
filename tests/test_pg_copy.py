"""CSV of a PostgreSQL table written by PostgreSQL (``COPY``) is the CSV written here before.

For every type the server writes as text and cells that need quoting (commas, quotes, CR, LF,
CRLF, the NULL words, empty strings, NULL), in every ``?null=`` spelling: the bytes of the COPY
path against the bytes of csvnulls over the same stream with the COPY path hidden. Then a real
server: the CSV of a filtered query, and a client that hangs up mid-COPY. Needs the project's
PostgreSQL (127.0.0.1:5432).
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

psycopg = pytest.importorskip("psycopg")

from tablestream import create_app  # noqa: E402
from tablestream.config.settings import CSV_NULLS  # noqa: E402
from tablestream.sources.base import WrappedRows  # noqa: E402
from tablestream.sources.pgtext import copy_select  # noqa: E402
from tablestream.sources.postgres import PostgresSource  # noqa: E402
from tablestream.stream.formats import csv_pieces  # noqa: E402
from tablestream.testing import httpraw  # noqa: E402

from .pg import DSN, scratch_schema  # noqa: E402
from .test_pg_text import SERVER_TEXT, _create  # noqa: E402

pytestmark = pytest.mark.postgres

TRICKY = [
    "''",
    "','",
    "'\"'",
    "'a\"b,c'",
    "E'\\n'",
    "E'\\r'",
    "E'\\r\\n'",
    "E'x\\ny'",
    "E'\\\\N'",
    "'NULL'",
    "E'\\\\.'",
    "' lead and trail '",
    "'ü表 & <b>'",
    "E'a,b\"c\\r\\nd'",
    "'{0} %s %%'",
]


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with scratch_schema("ts_copy") as (admin, name):
        _create(admin, f"{name}.server_text", SERVER_TEXT)
        _create(
            admin, f"{name}.tricky", {"a": ("text", TRICKY), "b": ("varchar(40)", TRICKY[::-1])}
        )
        admin.execute(
            f"CREATE TABLE {name}.lone (a text); INSERT INTO {name}.lone VALUES (''), (NULL)"
        )
        admin.execute(
            f"CREATE TABLE {name}.floats (a int, f float8);"
            f"INSERT INTO {name}.floats VALUES (1, 0.1)"
        )
        admin.execute(
            f"CREATE TABLE {name}.beyond (id int, d date, ts timestamp, tz timestamptz);"
            f"INSERT INTO {name}.beyond VALUES (1, 'infinity', '-infinity', 'infinity'),"
            "(2, '0044-03-15 BC', '10000-01-01 00:00', '0001-01-01 00:00:00+00 BC'),"
            "(3, '2024-02-29', '0044-03-15 12:00:00.5 BC', '2024-01-01 00:00:00.5+00')"
        )
        for view, seconds in (("sleepy", 1.2), ("sleepless", 3)):  # to the first row
            admin.execute(
                f"CREATE VIEW {name}.{view} AS SELECT * FROM {name}.tricky "
                f"WHERE (SELECT pg_sleep({seconds})::text) IS NOT NULL"
            )
        admin.execute(
            f"CREATE TABLE {name}.big AS SELECT i AS id, 'row ' || i AS name, i * 1.5 AS amount "
            "FROM generate_series(1, 1000000) i"
        )
        yield name


@pytest.fixture(scope="module")
def source(schema) -> Iterator[PostgresSource]:
    tables = [f"{schema}.{t}" for t in ("server_text", "tricky", "lone", "floats", "beyond")]
    pg = PostgresSource(DSN, tables, fetch_rows=3, pool_min=0, pool_max=2, pool_timeout=5)
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def german_dates(schema) -> Iterator[PostgresSource]:
    """The same tables on sessions whose ``DateStyle`` is not ISO: a bare date column would be
    copied as ``29.02.2024``."""
    tables = [f"{schema}.{t}" for t in ("server_text", "beyond")]
    dsn = f"{DSN} options='-c DateStyle=German,DMY'"
    pg = PostgresSource(dsn, tables, fetch_rows=3, pool_min=0, pool_max=2, pool_timeout=5)
    yield pg
    pg.close()


class _WrittenHere(WrappedRows):
    """The same stream with the COPY path hidden: csvnulls writes its CSV, as before."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.kinds = inner.kinds

    def batches(self):
        return self._inner.batches()

    def typed_batches(self):
        return self._inner.typed_batches()


def _csv(source: PostgresSource, table: str, null: str, copy: bool, **where) -> tuple[str, bool]:
    """The CSV of ``table`` and whether the database wrote it."""
    [found] = [t for t in source.tables if t.name == table]
    stream = found.open_where(
        where.get("columns"), where.get("tail", ""), where.get("params", ()), typed=null != "empty"
    )
    try:
        rows = stream if copy else _WrittenHere(stream)
        text = "".join(csv_pieces(rows, lambda: "", null))
        return text, stream._copy is not None
    finally:
        stream.close()


@pytest.mark.parametrize("null", CSV_NULLS)
@pytest.mark.parametrize("table", ["server_text", "tricky", "beyond"])
def test_csv_written_by_postgresql_is_byte_for_byte_the_csv_written_here(source, table, null):
    written_here, copied = _csv(source, table, null, copy=False)
    assert not copied
    by_postgres, copied = _csv(source, table, null, copy=True)
    assert copied, "the COPY path was not taken"
    assert by_postgres == written_here
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {source.tables[0].schema}.{table}").fetchone()[0]
    assert (
        rows >= (3 if table == "beyond" else 10) and by_postgres.count("\r\n") >= rows + 1
    )  # the header and every row


@pytest.mark.parametrize("table", ["server_text", "beyond"])
def test_copied_dates_are_iso_whatever_the_sessions_datestyle(german_dates, table):
    for null in CSV_NULLS:
        by_postgres, copied = _csv(german_dates, table, null, copy=True)
        assert copied and by_postgres == _csv(german_dates, table, null, copy=False)[0]
    assert "2024-02-29" in by_postgres and "29.02.2024" not in by_postgres


def test_columns_whose_own_output_is_the_text_are_copied_bare_under_iso_dates():
    """No per-row expression where the type's output function already writes the text: COPY
    of the bench's orders took ~1.8x ``SELECT *``'s backend time with one per column."""
    names, oids = ["i", "n", "t", "d", "ts", "b"], [23, 1700, 25, 1082, 1114, 16]
    select, all_text = copy_select(names, oids, empty_as_null=False, iso_dates=True)
    text = select.as_string(None)
    assert all_text and text.startswith('"i" AS "i", "n" AS "n", "t" AS "t", "d" AS "d", CASE')
    assert "to_char" in text and '"b"::text' in text  # fractions; true/false, not t/f
    not_iso, _ = copy_select(names, oids, empty_as_null=True, iso_dates=False)
    assert 'to_char("d"' in not_iso.as_string(None)
    assert "NULLIF(\"t\", '')" in not_iso.as_string(None)


@pytest.mark.parametrize("null", CSV_NULLS)
def test_a_filtered_query_is_copied_with_its_values_bound_as_literals(source, null):
    where = {
        "columns": ["b", "a"],
        "tail": " WHERE a <> %s AND b IS NOT NULL ORDER BY id",
        "params": ("{0} %s %%",),
    }
    written_here, _ = _csv(source, "tricky", null, copy=False, **where)
    by_postgres, copied = _csv(source, "tricky", null, copy=True, **where)
    assert copied and by_postgres == written_here
    with psycopg.connect(DSN) as conn:
        expected = conn.execute(
            f"SELECT count(*) FROM {source.tables[0].schema}.tricky WHERE a <> %s "
            "AND b IS NOT NULL",
            where["params"],
        ).fetchone()[0]
    parsed = list(csv.reader(io.StringIO(by_postgres, newline="")))
    assert parsed[0] == ["b", "a"] and len(parsed) == expected + 1 and expected >= 10
    assert all(a != "{0} %s %%" for _, a in parsed[1:])


@pytest.mark.parametrize("table", ["lone", "floats"])
def test_tables_whose_csv_postgresql_would_write_otherwise_are_written_here(source, table):
    """One column (COPY quotes a lone \\. and not a lone empty field); a float column (its
    text is Python's repr, which PostgreSQL does not write)."""
    for null in CSV_NULLS:
        text, copied = _csv(source, table, null, copy=True)
        assert not copied
        assert text == _csv(source, table, null, copy=False)[0]


@pytest.fixture
def copy_server(thread_server, schema):
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": DSN,
            "pg_tables": f"{schema}.big,{schema}.tricky",
        }
    )
    yield thread_server(app)
    app.extensions["tablestream"].catalog["big"]._source.close()


def test_a_copied_csv_stream_through_the_server_has_every_row_once(copy_server):
    response = httpraw.get(f"{copy_server.url}/tables/big.csv?limit=150000&offset=10", timeout=60)
    assert response.status == 200 and response.terminated
    lines = response.body.split(b"\r\n")
    assert lines[0] == b"id,name,amount" and lines[-1] == b""
    assert len(lines) == 150_002
    assert lines[1] == b"11,row 11,16.5" and lines[-2] == b"150010,row 150010,225015.0"


def _copies(schema: str, action: str = "count(*)") -> int:
    """``action`` over the service's COPYs of this test's schema that are running."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        return conn.execute(
            f"SELECT {action} FROM pg_stat_activity WHERE application_name = 'tablestream' "
            "AND query LIKE 'COPY %%' AND query LIKE %s AND state = 'active'",
            (f"%{schema}%",),
        ).fetchall()


def _held(server) -> socket.socket:
    """A CSV stream of the big table (~25 MB) whose client has read its first bytes and reads
    no more: once waitress's and the kernel's buffers are full (a few MB) the COPY waits."""
    client = socket.create_connection(("127.0.0.1", urlsplit(server.url).port))
    client.sendall(b"GET /tables/big.csv HTTP/1.1\r\nHost: t\r\n\r\n")
    assert client.recv(4096)
    time.sleep(0.2)
    return client


def test_a_client_that_hangs_up_mid_copy_leaves_no_copy_running_and_the_table_served(
    copy_server, schema
):
    for _ in range(3):  # more hang-ups than the pool's two connections
        client = _held(copy_server)
        assert _copies(schema) == [(1,)]  # held by the client that does not read
        client.close()
    deadline = time.monotonic() + 20
    while _copies(schema) != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _copies(schema) == [(0,)]
    again = httpraw.get(f"{copy_server.url}/tables/tricky.csv?null=copy", timeout=30)
    assert again.status == 200 and again.terminated and again.body.startswith(b"id,a,b\r\n")


def test_a_backend_killed_mid_copy_ends_the_csv_with_the_error_marker_not_a_clean_end(
    copy_server, schema
):
    client = _held(copy_server)
    try:
        assert _copies(schema, "pg_terminate_backend(pid)") == [(True,)]
        client.settimeout(30)
        received = bytearray()
        while piece := client.recv(1 << 16):
            received += piece
    finally:
        client.close()
    tail = bytes(received[-300:])
    assert b"# tablestream:error after " in tail and b"the table is incomplete" in tail
    assert not tail.endswith(b"0\r\n\r\n")  # no terminating chunk: the cut shows
    again = httpraw.get(f"{copy_server.url}/tables/big.csv?limit=3", timeout=30)
    assert again.terminated and again.body.count(b"\r\n") == 4


def _limited_server(thread_server, schema: str, limit_ms: int):
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": DSN,
            "pg_pool_max": "2",
            "pg_tables": f"{schema}.sleepy,{schema}.sleepless,{schema}.tricky",
            "query_time_limit_ms": str(limit_ms),
        }
    )
    return app, thread_server(app)


def _timed(url: str) -> tuple[httpraw.RawResponse, float]:
    started = time.monotonic()
    answer = httpraw.get(url, timeout=30)
    return answer, time.monotonic() - started


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_csv_under_the_query_time_limit_runs_its_query_once(thread_server, schema):
    """The view takes 1.2 s to its first row, within the 2 s limit. CSV used to run the query
    twice: a first FETCH under the limit, then the COPY (~2.4 s); now the COPY alone."""
    app, server = _limited_server(thread_server, schema, 2000)
    try:
        page, page_took = _timed(f"{server.url}/tables/sleepy")
        csv_file, csv_took = _timed(f"{server.url}/tables/sleepy.csv")
        assert page.status == 200 and csv_file.status == 200 and csv_file.terminated
        assert csv_file.body.startswith(b"id,a,b\r\n") and csv_file.body.count(b"\r\n") > 10
        assert page_took > 1.2 and csv_took > 1.2  # each waited for the view once
        assert csv_took < page_took + 0.8, (csv_took, page_took)
    finally:
        app.extensions["tablestream"].catalog["sleepy"]._source.close()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_csv_without_a_first_row_in_time_is_a_503_its_copy_cancelled(thread_server, schema):
    app, server = _limited_server(thread_server, schema, 200)
    admission = app.extensions["tablestream"].admission
    in_use = admission.in_use
    try:
        for _ in range(3):  # more than the pool's two connections
            answer, took = _timed(f"{server.url}/tables/sleepless.csv")
            assert answer.status == 503 and "took too long" in answer.text, answer.text[:300]
            assert took < 1.5  # the 3 s view was not waited for
        assert admission.in_use == in_use
        with psycopg.connect(DSN, autocommit=True) as conn:
            running = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                (f"COPY %{schema}.sleepless%",),
            ).fetchone()[0]
        assert running == 0
        again = httpraw.get(f"{server.url}/tables/tricky.csv", timeout=30)
        assert again.status == 200 and again.terminated
    finally:
        app.extensions["tablestream"].catalog["sleepy"]._source.close()
