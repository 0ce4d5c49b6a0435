"""The same queries on PostgreSQL: pushed down as parameterized SQL, answers equal to SQLite's.

The demo orders are copied from the test's SQLite file into a schema of their own (with a
primary key and the demo's indexes), so every answer can be compared with the SQLite table that
holds the same rows. Needs the project's PostgreSQL (127.0.0.1:5432, user postgres, db test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablestream import create_app
from tablestream.query import parse_query
from tablestream.query.sql import POSTGRES, clauses
from tablestream.testing import httpraw

from .pg import DSN, copy_demo_orders, scratch_schema
from .tablehtml import parse_table
from .test_queries import FILTERS, _csv_ids, _follow, _ids

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_orders(demo_db: Path) -> Iterator[str]:
    with scratch_schema("ts_query") as (admin, schema):
        copy_demo_orders(admin, schema, demo_db)
        admin.execute(f"CREATE INDEX ON {schema}.orders (customer_id)")
        admin.execute(f"CREATE INDEX ON {schema}.orders (status)")
        admin.execute(f"ANALYZE {schema}.orders")
        yield schema


@pytest.fixture(scope="module")
def pg_app(pg_orders):
    app = create_app(
        {"db": "", "synthetic_rows": "0", "pg_dsn": DSN, "pg_tables": f"{pg_orders}.orders"}
    )
    yield app
    app.extensions["tablestream"].catalog["orders"]._source.close()  # the pool's connections


@pytest.fixture
def pg_server(thread_server, pg_app):
    return thread_server(pg_app)


def _get(server, path: str) -> httpraw.RawResponse:
    return httpraw.get(server.url + path, timeout=30)


@pytest.mark.parametrize(
    ("args", "where", "params"), FILTERS, ids=[urlencode(f[0]) for f in FILTERS]
)
def test_a_filter_on_postgresql_streams_the_rows_sqlite_finds_in_every_format(
    pg_server, demo_db, args, where, params
):
    expected = _ids(demo_db, where, params)
    query = urlencode(args)
    page = parse_table(_get(pg_server, f"/tables/orders?{query}").text)
    assert page.rows_sent == len(expected)
    assert [row[0] for row in page.rows] == expected  # a query orders by the primary key
    assert _csv_ids(_get(pg_server, f"/tables/orders.csv?{query}")) == expected
    lines = _get(pg_server, f"/tables/orders.ndjson?{query}").text.splitlines()
    assert [str(json.loads(line)["id"]) for line in lines] == expected
    assert all(isinstance(json.loads(line)["id"], int) for line in lines)  # typed NDJSON


def test_a_sort_on_postgresql_is_sqlites_order_and_keyset_pages_cover_it_once(pg_server, demo_db):
    expected = _ids(demo_db, "WHERE customer_id < 30", order="total DESC, id DESC")
    assert _csv_ids(_get(pg_server, "/tables/orders.csv?customer_id__lt=30&_sort_desc=total")) == (
        expected
    )
    rows, urls = _follow(
        pg_server, f"/tables/orders?customer_id__lt=30&_sort_desc=total&limit={len(expected) // 4}"
    )
    assert [r[0] for r in rows] == expected
    assert all("_after=" in url for url in urls[1:])


def test_a_sort_on_the_key_reads_its_index_without_sorting_and_pages_continue_by_it(
    pg_server, pg_app, demo_db
):
    # `ASC NULLS FIRST` is not a PostgreSQL index's order (ASC is NULLS LAST there): written
    # so for the key, `_sort=id` sorted the whole table before its first row.
    table = pg_app.extensions["tablestream"].catalog["orders"]
    name = ".".join(f'"{part}"' for part in table.sql_name)
    for asked, scan in (("_sort", "Index Scan using"), ("_sort_desc", "Index Scan Backward using")):
        q = parse_query({asked: ["id"]}, table.columns(), table.column_types())
        tail, params = clauses(POSTGRES, q, "id", table.sql_name)
        with psycopg.connect(DSN) as conn:
            explain = f"EXPLAIN SELECT * FROM {name}{tail} LIMIT 100"
            plan = "\n".join(r[0] for r in conn.execute(explain, params))
        assert scan in plan and "Sort" not in plan, plan
    expected = _ids(demo_db, "WHERE customer_id < 30", order="id DESC")
    rows, urls = _follow(
        pg_server, f"/tables/orders?customer_id__lt=30&_sort_desc=id&limit={len(expected) // 4}"
    )
    assert [r[0] for r in rows] == expected and len(urls) >= 4
    assert _csv_ids(_get(pg_server, "/tables/orders.csv?customer_id__lt=30&_sort=id")) == sorted(
        expected, key=int
    )


def test_a_postgresql_page_is_in_key_order_and_continues_by_key(pg_server, demo_db):
    # A page (limit) is ordered by the primary key even without a query: a plain scan may
    # start mid-table (synchronized scans), so the same URL could give other rows.
    plain, _ = _follow(pg_server, "/tables/orders?customer_id__lt=5&limit=7")
    assert [r[0] for r in plain] == _ids(demo_db, "WHERE customer_id < 5")
    first = parse_table(_get(pg_server, "/tables/orders?limit=5").text)
    assert [r[0] for r in first.rows] == ["1", "2", "3", "4", "5"]
    page = _get(pg_server, "/tables/orders?limit=5").text
    assert "_after=" in page.split('rel="next"', 1)[1].split(">", 1)[0]


def test_a_bad_value_for_a_postgresql_column_is_a_400_before_any_sql(pg_server):
    for query, says in (
        ("total__gt=abc", "total is a number column"),
        ("id=1.5", "id is an integer column"),
        ("customer_id__in=1,x", "customer_id is an integer column"),
    ):
        response = _get(pg_server, f"/tables/orders?{query}")
        assert response.status == 400 and says in response.text, query


_VALUES = st.one_of(
    st.text(max_size=40).filter(lambda s: "\x00" not in s),
    st.sampled_from(["'; DROP TABLE orders; --", "%s", "%(x)s", "%%", "1e999", "9" * 40, ""]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["id", "total", "status", "note", "placed_at", "x"]),
    lookup=st.sampled_from(["", "__gt", "__not", "__contains", "__startswith", "__in", "__isnull"]),
    value=_VALUES,
)
def test_fuzzed_filters_on_postgresql_get_200_or_400_and_leave_the_table_alone(
    pg_app, pg_orders, name, lookup, value
):
    response = pg_app.test_client().get(f"/tables/orders.csv?{urlencode({name + lookup: value})}")
    response.get_data()
    response.close()
    assert response.status_code in (200, 400), (name, lookup, value, response.status_code)
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg_orders}.orders").fetchone()[0] == 20_000
