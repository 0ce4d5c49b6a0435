"""The PostgreSQL source against a real server on 127.0.0.1:5432 (user postgres, db test).

In CI (CI=true) a missing server fails these tests; elsewhere they skip with the reason.
Every test session works in its own schema, dropped at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.postgres

from tablestream import create_app  # noqa: E402
from tablestream.sources.cells import format_batch  # noqa: E402
from tablestream.sources.postgres import PostgresTable  # noqa: E402
from tablestream.testing import httpraw, rss_bytes  # noqa: E402
from tablestream.testing.metricsread import value  # noqa: E402

from .pg import DSN, PG_PORT, scratch_schema  # noqa: E402
from .tablehtml import parse_table  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with scratch_schema("ts_test") as (admin, name):
        admin.execute(
            f"""
            CREATE TABLE {name}.big AS
                SELECT g AS id, 'name ' || g AS name, (g::bigint * 7919 % 100000) / 100.0 AS amount,
                       timestamp '2024-01-01' + g * interval '37 seconds' AS created
                FROM generate_series(1, 1000000) AS g;
            CREATE TABLE {name}.types (
                id int, note text, big numeric, at_tz timestamptz, at timestamp, day date,
                flag boolean, raw bytea, doc jsonb);
            INSERT INTO {name}.types VALUES
                (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                (2, '<b>ünïcödé</b> & "表"', 123456789012345678901234567890.123456789,
                 '2024-05-06 07:08:09.5+02', '2024-05-06 07:08:09', '2024-05-06', true,
                 '\\xdeadbeef', '{{"a": [1, "x"]}}');
            """
        )
        yield name


def _settings(schema: str, **extra: str) -> dict[str, str]:
    return {
        "db": "",
        "synthetic_rows": "0",
        "pg_dsn": DSN,
        "pg_tables": f"{schema}.*",
        **extra,
    }


def _own_ports() -> set[int]:
    """Local ports of this process's connections to PostgreSQL: the in-process server's pool.

    The database is shared (other test runs, other services may hold sessions named
    ``tablestream``); counting only ours keeps the pool's checks about this pool.
    """
    return {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == PG_PORT
    }


def _sessions(schema: str) -> list[tuple[str, str]]:
    """(state, query) of this service's connections, other than our own admin session."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        found = conn.execute(
            "SELECT state, query, client_port FROM pg_stat_activity "
            "WHERE application_name = 'tablestream' AND pid <> pg_backend_pid()"
        ).fetchall()
    ours = _own_ports()
    return [(state, query) for state, query, port in found if port in ours]


def _wait_idle(schema: str, timeout: float = 10.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        sessions = _sessions(schema)
        if all(state == "idle" for state, _ in sessions) or time.monotonic() > deadline:
            return sessions
        time.sleep(0.05)


def test_nulls_unicode_numerics_timestamps_and_bytes_render_as_text(schema, client_for):
    client = client_for(_settings(schema))
    page = client.get("/tables/types").get_data(as_text=True)
    table = parse_table(page)
    assert table.columns == ["id", "note", "big", "at_tz", "at", "day", "flag", "raw", "doc"]
    assert table.rows[0] == ["1"] + [""] * 8
    assert table.rows[1] == [
        "2",
        '<b>ünïcödé</b> & "表"',
        "123456789012345678901234567890.123456789",
        "2024-05-06 05:08:09.500000+00:00",
        "2024-05-06 07:08:09",
        "2024-05-06",
        "true",
        "\\xdeadbeef",
        '{"a": [1, "x"]}',
    ]
    assert "&lt;b&gt;ünïcödé&lt;/b&gt; &amp; &#34;表&#34;" in page


@pytest.fixture
def client_for():
    apps = []

    def make(settings: dict[str, str]):
        app = create_app(settings)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        for table in app.extensions["tablestream"].catalog.values():
            if isinstance(table, PostgresTable):
                table._source.close()
                break


@pytest.mark.slow
def test_a_million_rows_stream_through_a_server_side_cursor_with_flat_memory(
    schema, process_server
):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in _settings(schema).items()}
    server = process_server(**env)
    small = httpraw.get(f"{server.url}/tables/big?limit=10000", keep=False)
    assert b'data-rows-sent="10000"' in small.tail
    after_small = server.rss()
    started = time.monotonic()
    big = httpraw.get(f"{server.url}/tables/big", keep=False, timeout=300)
    elapsed = time.monotonic() - started
    assert big.terminated and b'data-rows-sent="1000000"' in big.tail
    grown = server.rss() - after_small
    rate, mbps = 1e6 / elapsed, big.size / elapsed / 1e6
    print(f"\n1M PostgreSQL rows: {rate:,.0f} rows/s, {mbps:.1f} MB/s, RSS +{grown / MIB:.1f} MiB")
    assert grown < 8 * MIB, grown
    assert all(state == "idle" for state, _ in _wait_idle(schema))


class _ClientSideTable(PostgresTable):
    """Negative control (test only): an ordinary cursor, which loads the whole result."""

    def open(self, limit=None, offset=0):
        conn = self._source.borrow()
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {self.schema}.{self.table}")
        table = self

        class Stream:
            columns = tuple(d.name for d in cur.description)
            rows_read = 0

            def __iter__(self):
                for row in cur:
                    yield from format_batch([row])

            def close(self):
                conn.rollback()
                table._source.pool.putconn(conn)

        return Stream()


@pytest.mark.slow
def test_negative_control_a_client_side_cursor_grows_by_the_result_size(schema, thread_server):
    app = create_app(_settings(schema))
    catalog = app.extensions["tablestream"].catalog
    catalog["big"].__class__ = _ClientSideTable
    server = thread_server(app)
    before = rss_bytes(os.getpid())
    httpraw.get(f"{server.url}/tables/big?limit=10", keep=False, max_bytes=64 * 1024)
    grown = rss_bytes(os.getpid()) - before
    catalog["big"]._source.close()
    assert grown > 40 * MIB, f"the client-side cursor grew only {grown / MIB:.1f} MiB"


def test_connections_go_back_to_the_pool_after_completed_aborted_and_failed_streams(
    schema, thread_server
):
    app = create_app(_settings(schema, pg_pool_max="2"))
    server = thread_server(app)
    completed = httpraw.get(f"{server.url}/tables/big?limit=5000")
    assert parse_table(completed.text).rows_sent == 5000
    aborted = httpraw.get(f"{server.url}/tables/big", max_bytes=200_000)
    assert not aborted.terminated
    sessions = _wait_idle(schema)
    assert sessions and all(state == "idle" for state, _ in sessions), sessions

    # A backend killed mid-stream: the client gets the error marker and a cut stream.
    metrics = f"{server.url}/metrics"
    rows_before = value(metrics, "tablestream_stream_rows_total", table="big") or 0

    def kill_soon() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # once rows of this stream went out
            if (value(metrics, "tablestream_stream_rows_total", table="big") or 0) > rows_before:
                break
            time.sleep(0.02)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'tablestream' AND state <> 'idle' "
                "AND client_port = ANY(%s)",
                (sorted(_own_ports()),),
            )

    killer = threading.Thread(target=kill_soon)
    killer.start()
    failed = httpraw.get(f"{server.url}/tables/big", keep=False)
    killer.join()
    assert not failed.terminated
    assert b"tablestream:error" in failed.tail and b"data-rows-sent" not in failed.tail
    assert all(state == "idle" for state, _ in _wait_idle(schema))
    assert len(_sessions(schema)) <= 2
    again = httpraw.get(f"{server.url}/tables/big?limit=10")  # the pool replaced the dead one
    assert parse_table(again.text).rows_sent == 10
    app.extensions["tablestream"].catalog["big"]._source.close()


def test_an_exhausted_pool_answers_503_with_retry_after(schema, thread_server):
    app = create_app(_settings(schema, pg_pool_max="1", pg_pool_min="1", pg_pool_timeout="0.5"))
    server = thread_server(app)
    release = threading.Event()

    def hold_the_only_connection() -> None:
        # Read a little, then stop reading: the stream blocks on a full socket, holding its
        # connection, until we hang up.
        import socket

        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /tables/big HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.recv(1024)
            release.wait(20)

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    try:
        deadline = time.monotonic() + 5
        while not [s for s, _ in _sessions(schema) if s != "idle"]:
            assert time.monotonic() < deadline, "the first stream never started"
            time.sleep(0.05)
        refused = httpraw.get(f"{server.url}/tables/big?limit=10")
        assert refused.status == 503
        assert refused.headers["retry-after"] == "2"
        assert "busy" in refused.text
        busy = app.test_client().get("/metrics").get_data(as_text=True)
        assert 'tablestream_source_busy_total{table="big"} 1.0' in busy
    finally:
        release.set()
        holder.join()
    app.extensions["tablestream"].catalog["big"]._source.close()


def test_a_database_down_at_start_leaves_named_tables_served_with_503_and_not_ready():
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=1",
            "pg_tables": "public.orders",
            "pg_pool_min": "0",
            "pg_pool_timeout": "0.5",
        }
    )
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "PostgreSQL unreachable" in ready.get_data(as_text=True)
    page = client.get("/tables/orders")
    assert page.status_code == 503
    assert "Traceback" not in page.get_data(as_text=True)
    app.extensions["tablestream"].catalog["orders"]._source.close()


def test_a_schema_wildcard_with_the_database_down_stops_start_up():
    from tablestream import ConfigError

    with pytest.raises(ConfigError, match=r"needs the database at start-up"):
        create_app(
            {
                "db": "",
                "pg_dsn": "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=1",
                "pg_tables": "public.*",
                "pg_pool_min": "0",
            }
        )
