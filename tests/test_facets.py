"""``/tables/<name>/facets.json``: counts by the database, equal to its own GROUP BY in the same
filter; a count past TABLESTREAM_FACET_TIME_LIMIT_MS says timed_out and is counted; suggestions
are exactly the columns of few distinct values; only database sources, refusals in JSON."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tablestream import create_app
from tablestream.testing import httpraw, metricsread

COLUMNS = ("id", "customer_id", "product", "quantity", "total", "placed_at", "status", "note")


def _facets(url: str) -> tuple[int, dict]:
    answer = httpraw.get(url, timeout=30)
    return answer.status, json.loads(answer.text) if answer.status == 200 else answer.text


def test_facet_counts_equal_the_databases_group_by_in_the_same_filter(thread_server, demo_db):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0",
                                       "facet_time_limit_ms": "5000"}))  # fmt: skip
    with sqlite3.connect(demo_db) as db:
        for column in COLUMNS:
            status, body = _facets(
                f"{server.url}/tables/orders/facets.json?_facet={column}&quantity__gte=3"
            )
            assert status == 200, body
            facet = body["facets"][column]
            expected = db.execute(
                f'SELECT "{column}", count(*) FROM orders WHERE quantity >= 3 GROUP BY 1 '
                "ORDER BY 2 DESC, 1 LIMIT 31"
            ).fetchall()
            got = [(v["value"], v["count"]) for v in facet["values"]]
            assert got == [(v, n) for v, n in expected[:30]]
            assert facet["truncated"] == (len(expected) > 30) and not facet["timed_out"]
        nulls = db.execute("SELECT count(*) FROM orders WHERE note IS NULL").fetchone()[0]
    db.close()
    status, body = _facets(f"{server.url}/tables/orders/facets.json?_facet=status&_facet=note")
    link = body["facets"]["status"]["values"][0]["url"]
    assert link.startswith("/tables/orders?status=")
    assert "status" not in body["suggested"] and "status" in body["facets"]
    null_value = [v for v in body["facets"]["note"]["values"] if v["value"] is None]
    assert nulls == 0 or null_value == [
        {"value": None, "count": nulls, "url": "/tables/orders?note__isnull=1"}
    ]


def test_customers_facet_counts_equal_the_databases_group_by_in_the_same_filter(
    thread_server, demo_db
):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0",
                                       "facet_time_limit_ms": "5000"}))  # fmt: skip
    with sqlite3.connect(demo_db) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(customers)")]
        assert len(columns) == 5
        for column in columns:
            status, body = _facets(
                f"{server.url}/tables/customers/facets.json?_facet={column}&city__not=Lima"
            )
            assert status == 200, body
            expected = db.execute(
                f'SELECT "{column}", count(*) FROM customers WHERE city IS NOT ? GROUP BY 1 '
                "ORDER BY 2 DESC, 1 LIMIT 31",
                ("Lima",),
            ).fetchall()
            facet = body["facets"][column]
            assert [(v["value"], v["count"]) for v in facet["values"]] == expected[:30]
            assert facet["truncated"] == (len(expected) > 30) and not facet["timed_out"]
    db.close()


def test_the_table_page_takes_facet_for_its_script_and_streams_the_same_rows(
    thread_server, demo_db
):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0"}))
    plain = httpraw.get(f"{server.url}/tables/orders.csv?status=paid&limit=50", timeout=10)
    faceted = httpraw.get(
        f"{server.url}/tables/orders.csv?status=paid&limit=50&_facet=status&_facet=note",
        timeout=10,
    )
    assert plain.status == faceted.status == 200
    assert faceted.text == plain.text and plain.text.count("\r\n") == 51


def test_a_facet_over_its_time_limit_says_timed_out(thread_server, tmp_path: Path):
    path = tmp_path / "slow.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i % 7)) for i in range(2000)])
        conn.execute("CREATE VIEW cubed AS SELECT a.v FROM t a, t b, t c")
    conn.close()
    server = thread_server(create_app({"db": str(path), "synthetic_rows": "0",
                                       "facet_time_limit_ms": "50"}))  # fmt: skip
    status, body = _facets(f"{server.url}/tables/cubed/facets.json?_facet=v")
    assert status == 200
    assert body["facets"]["v"] == {"values": [], "truncated": False, "timed_out": True}
    assert httpraw.get(f"{server.url}/healthz", timeout=5).status == 200


def test_facets_of_the_synthetic_table_are_a_400_naming_database_sources(thread_server):
    server = thread_server(create_app({"db": "", "synthetic_rows": "100"}))
    answer = httpraw.get(f"{server.url}/tables/synthetic/facets.json?_facet=id", timeout=10)
    assert answer.status == 400 and "need a database source" in answer.text


def test_a_facet_on_a_column_the_caller_does_not_have_is_refused(thread_server, demo_db):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0"}))
    answer = httpraw.get(f"{server.url}/tables/orders/facets.json?_facet=secret", timeout=10)
    assert answer.status == 400 and "not a column" in answer.text
    missing = httpraw.get(f"{server.url}/tables/nothere/facets.json?_facet=id", timeout=10)
    assert missing.status == 404


def test_a_page_with_facet_streams_at_once_and_carries_its_facets_url(thread_server, demo_db):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0"}))
    page = httpraw.get(
        f"{server.url}/tables/orders?_facet=status&quantity__gte=3&limit=5&offset=10", timeout=10
    )
    assert page.status == 200 and page.terminated
    # The counts are the script's own request, in the page's filter, without its slice.
    assert (
        'data-facets-url="/tables/orders/facets.json?_facet=status&amp;quantity__gte=3"'
        in page.text
    )
    assert "facets.js" in page.text and 'data-rows-sent="5"' in page.text
    # The page's links keep asking for the facets.
    assert "_facet=status" in page.text.split('rel="next" href="')[1].split('"')[0]
    plain = httpraw.get(f"{server.url}/tables/orders?limit=5", timeout=10)
    assert "ts-facets" not in plain.text and "facets.js" not in plain.text


def test_each_facet_that_times_out_is_counted_apart_from_query_timeouts(
    thread_server, tmp_path: Path
):
    path = tmp_path / "slow2.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i % 7)) for i in range(2000)])
        conn.execute("CREATE VIEW cubed AS SELECT a.v AS v, b.v AS w FROM t a, t b, t c")
    conn.close()
    server = thread_server(create_app({"db": str(path), "synthetic_rows": "0",
                                       "facet_time_limit_ms": "50"}))  # fmt: skip
    status, body = _facets(f"{server.url}/tables/cubed/facets.json?_facet=v&_facet=w")
    assert status == 200
    assert body["facets"]["v"]["timed_out"] and body["facets"]["w"]["timed_out"]
    metrics = server.url + "/metrics"
    assert metricsread.value(metrics, "tablestream_facet_timeouts_total", table="cubed") == 2
    assert metricsread.value(metrics, "tablestream_query_timeouts_total") is None  # first rows'


def test_suggested_facets_are_exactly_the_columns_of_few_distinct_values_in_the_sample(
    thread_server, demo_db
):
    server = thread_server(create_app({"db": str(demo_db), "synthetic_rows": "0"}))
    status, body = _facets(f"{server.url}/tables/orders/facets.json?_facet=id")
    assert status == 200, body
    with sqlite3.connect(demo_db) as db:
        distinct = {
            column: db.execute(
                f'SELECT count(DISTINCT "{column}") FROM '
                "(SELECT * FROM orders ORDER BY id LIMIT 1000)"
            ).fetchone()[0]
            for column in COLUMNS
        }
    db.close()
    # 8 products, 9 quantities, 6 statuses, 3 notes; hundreds of customers, totals, times.
    assert [c for c in COLUMNS[1:] if 2 <= distinct[c] <= 30] == [
        "product", "quantity", "status", "note"
    ]  # fmt: skip
    assert body["suggested"] == ["product", "quantity", "status", "note"]


def test_facets_of_a_csv_file_are_a_json_400_naming_database_sources(thread_server, nasty_csv):
    server = thread_server(create_app({"db": "", "synthetic_rows": "0",
                                       "csv": f"nasty={nasty_csv}"}))  # fmt: skip
    answer = httpraw.get(f"{server.url}/tables/nasty/facets.json?_facet=n", timeout=10)
    assert answer.status == 400 and answer.headers["content-type"] == "application/json"
    assert json.loads(answer.text) == {
        "error": "Facets need a database source (SQLite or PostgreSQL); 'nasty' is a csv "
        "table, which could only be counted by reading every row."
    }
    missing = httpraw.get(f"{server.url}/tables/gone/facets.json?_facet=n", timeout=10)
    assert missing.status == 404 and json.loads(missing.text) == {
        "error": "There is no table 'gone'."
    }
