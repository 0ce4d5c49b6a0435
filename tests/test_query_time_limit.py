"""TABLESTREAM_QUERY_TIME_LIMIT_MS: a query that finds no first row in time is a 503 that says
what to ask instead, in the format it asked for, with its slot and connection given back; a
query within it is untouched; a row count is bounded by it too.

Against real waitress servers, on a demo database big enough that a sort on an unindexed column
with an offset near the end outlasts a small limit (20 ms), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablestream import create_app
from tablestream.sources.deadline import TIMEOUT_ADVICE
from tablestream.sources.demo import create_demo_db
from tablestream.testing import httpraw, metricsread

from .pg import DSN, copy_demo_orders, scratch_schema

ROWS = 100_000
LIMIT_MS = 20
SLOW = f"/tables/orders?_sort=note&offset={ROWS - 10}&limit=5000"  # no index on note
SLOW_CSV = f"/tables/orders.csv?_sort=note&offset={ROWS - 10}&limit=5000"
SLOW_NDJSON = f"/tables/orders.ndjson?_sort=note&offset={ROWS - 10}&limit=5000"


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limit") / "big.sqlite3"
    return create_demo_db(path, rows=ROWS, customers=1000)


def _over_the_limit_is_refused_quickly_and_gives_everything_back(server, app) -> None:
    admission = app.extensions["tablestream"].admission
    in_use = admission.in_use
    for path in (SLOW, SLOW_CSV):
        started = time.monotonic()
        answer = httpraw.get(server.url + path, timeout=30)
        took = time.monotonic() - started
        assert answer.status == 503, answer.text[:300]
        assert "took too long" in answer.text and "_after=" in answer.text
        assert took < LIMIT_MS / 1000 + 0.5
    for _ in range(18):
        assert httpraw.get(server.url + SLOW, timeout=30).status == 503
    assert admission.in_use == in_use
    assert httpraw.get(server.url + "/healthz", timeout=5).status == 200
    timeouts = metricsread.value(server.url + "/metrics", "tablestream_query_timeouts_total",
                                 table="orders")  # fmt: skip
    assert timeouts == 20
    # Rows that flow are not limited: a cheap query of the same table streams whole.
    whole = httpraw.get(server.url + "/tables/orders.csv?limit=50000", timeout=60)
    assert whole.status == 200 and whole.text.count("\r\n") == 50_001


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_sqlite_query_without_a_first_row_in_time_is_a_503_and_releases_its_slot(
    thread_server, big_db
):
    unlimited = thread_server(create_app({"db": str(big_db), "synthetic_rows": "0",
                                          "query_time_limit_ms": "0"}))  # fmt: skip
    started = time.monotonic()
    assert httpraw.get(unlimited.url + SLOW, timeout=60).status == 200
    assert time.monotonic() - started > 2 * LIMIT_MS / 1000  # the query really is expensive
    app = create_app({"db": str(big_db), "synthetic_rows": "0",
                      "query_time_limit_ms": str(LIMIT_MS)})  # fmt: skip
    _over_the_limit_is_refused_quickly_and_gives_everything_back(thread_server(app), app)
    with sqlite3.connect(big_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


@pytest.fixture(scope="module")
def pg_big(big_db: Path) -> Iterator[str]:
    with scratch_schema("ts_limit") as (admin, schema):
        copy_demo_orders(admin, schema, big_db)
        admin.execute(f"ANALYZE {schema}.orders")
        yield schema


@pytest.mark.postgres
def test_a_postgres_query_without_a_first_row_in_time_is_a_503_and_returns_its_connection(
    thread_server, pg_big
):
    app = create_app({"db": "", "synthetic_rows": "0", "pg_dsn": DSN, "pg_pool_max": "2",
                      "pg_tables": f"{pg_big}.orders",
                      "query_time_limit_ms": str(LIMIT_MS)})  # fmt: skip
    try:
        # 20 refusals through a pool of 2: a connection kept by a refused query would be a
        # busy 503 (pool exhausted) long before the last one.
        _over_the_limit_is_refused_quickly_and_gives_everything_back(thread_server(app), app)
    finally:
        app.extensions["tablestream"].catalog["orders"]._source.close()


def _refused_in_the_format_it_asked_for(server) -> None:
    """The page's 503 is the HTML error page; CSV's the same message as plain text; NDJSON's a
    JSON object with the message and the advice apart."""
    page = httpraw.get(server.url + SLOW, timeout=30)
    assert page.status == 503 and page.headers["content-type"].startswith("text/html")
    csv = httpraw.get(server.url + SLOW_CSV, timeout=30)
    assert csv.status == 503, csv.text[:300]
    assert csv.headers["content-type"] == "text/plain; charset=utf-8"
    assert csv.text.startswith("This query on 'orders' took too long: it found no first row "
                               f"within {LIMIT_MS} ms")  # fmt: skip
    assert csv.text.endswith(f"To make it cheaper, {TIMEOUT_ADVICE}.\n")
    ndjson = httpraw.get(server.url + SLOW_NDJSON, timeout=30)
    assert ndjson.status == 503, ndjson.text[:300]
    assert ndjson.headers["content-type"] == "application/json"
    assert json.loads(ndjson.text) == {"error": csv.text.rstrip("\n"), "advice": TIMEOUT_ADVICE}
    assert "retry-after" not in ndjson.headers  # the same query would take as long again
    timeouts = metricsread.value(server.url + "/metrics", "tablestream_query_timeouts_total",
                                 table="orders")  # fmt: skip
    assert timeouts == 3


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_sqlite_query_over_the_limit_is_refused_in_csv_as_text_and_in_ndjson_as_json(
    thread_server, big_db
):
    app = create_app({"db": str(big_db), "synthetic_rows": "0",
                      "query_time_limit_ms": str(LIMIT_MS)})  # fmt: skip
    _refused_in_the_format_it_asked_for(thread_server(app))


@pytest.mark.postgres
def test_a_postgres_query_over_the_limit_is_refused_in_csv_as_text_and_in_ndjson_as_json(
    thread_server, pg_big
):
    app = create_app({"db": "", "synthetic_rows": "0", "pg_dsn": DSN, "pg_pool_max": "2",
                      "pg_tables": f"{pg_big}.orders",
                      "query_time_limit_ms": str(LIMIT_MS)})  # fmt: skip
    try:
        _refused_in_the_format_it_asked_for(thread_server(app))
    finally:
        app.extensions["tablestream"].catalog["orders"]._source.close()


def test_a_row_count_is_bounded_by_the_query_time_limit_too(thread_server, tmp_path: Path):
    """A view whose count takes ~0.1 s, under the counts' own 0.5 s but over a 5 ms query
    limit: counted without the limit, unknown (None) with it."""
    path = tmp_path / "counted.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1200)])
        # 1.44M pairs, each tested: SQLite cannot count it without reading them.
        conn.execute("CREATE VIEW pairs AS SELECT a.id FROM t a, t b WHERE (a.id * b.id) % 7 != 3")
    conn.close()
    counts = {}
    for limit in ("0", "5"):
        server = thread_server(create_app({"db": str(path), "synthetic_rows": "0",
                                           "query_time_limit_ms": limit}))  # fmt: skip
        started = time.monotonic()
        described = httpraw.get(server.url + "/tables/pairs.json", timeout=30)
        counts[limit] = (json.loads(described.text)["row_count"], time.monotonic() - started)
    assert counts["0"][0] == 1_263_870, counts  # within COUNT_SECONDS: the count is there
    assert counts["5"][0] is None, counts  # the same count past the query limit: unknown
    assert counts["5"][1] < 0.4, counts
