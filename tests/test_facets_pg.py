"""Facets and ``_search=`` on the PostgreSQL demo as ``tablestream demo-db --dsn`` builds it.

The other PostgreSQL facet test (``test_search_pg.py``) counts a text-typed copy of the SQLite
orders; here the demo is the project's own (``create_demo_pg``, loaded by the real CLI into a
scratch schema): ``numeric`` totals, ``timestamp`` columns, its indexes and its GIN search index.
Counts must equal PostgreSQL's own ``GROUP BY`` for every column of ``orders`` and
``customers``; a facet past its time limit is ``timed_out`` in time and the table still streams;
the demo can be searched without a test building the index.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tablestream import create_app
from tablestream.testing import httpraw, metricsread

from .pg import DSN, cli_demo_schema

pytestmark = pytest.mark.postgres

ORDERS, CUSTOMERS = 20_000, 500
FILTERS = {"orders": ("quantity__gte=3", "quantity >= %s", 3),
           "customers": ("city__not=Lima", "city IS DISTINCT FROM %s", "Lima")}  # fmt: skip
VECTOR = "to_tsvector('english', product || ' ' || coalesce(note, ''))"


@pytest.fixture(scope="module")
def pg_demo() -> Iterator[tuple]:
    with cli_demo_schema("ts_facetdemo", ORDERS, CUSTOMERS) as (admin, schema):
        # 200 times the orders, computed on every read: a count that cannot finish in 50 ms.
        admin.execute(
            f"CREATE VIEW {schema}.orders_x200 AS SELECT o.* FROM {schema}.orders o "
            "CROSS JOIN generate_series(1, 200) AS g"
        )
        yield admin, schema


def _app(schema: str, facet_ms: int) -> Any:
    return create_app({"db": "", "synthetic_rows": "0", "pg_dsn": DSN, "pg_pool_max": "3",
                       "pg_tables": f"{schema}.orders,{schema}.customers,{schema}.orders_x200",
                       "facet_time_limit_ms": str(facet_ms)})  # fmt: skip


@pytest.fixture
def pg_server(thread_server, pg_demo):
    app = _app(pg_demo[1], 5000)
    yield thread_server(app)
    app.extensions["tablestream"].catalog["orders"]._source.close()


def _as_json(value: Any) -> Any:
    """A facet value as facets.json writes it (docs/queries.md): numbers as JSON numbers, a
    ``numeric`` as the string of its digits, a timestamp as ``YYYY-MM-DD HH:MM:SS`` text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    return value


@pytest.mark.parametrize("table", ["orders", "customers"])
def test_demo_facet_counts_equal_postgres_group_by_for_every_column_in_the_same_filter(
    pg_server, pg_demo, table
):
    admin, schema = pg_demo
    arg, where, param = FILTERS[table]
    columns = [r[0] for r in admin.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position", (schema, table))]  # fmt: skip
    assert len(columns) == {"orders": 8, "customers": 5}[table]
    kinds = set()
    for column in columns:
        answer = httpraw.get(f"{pg_server.url}/tables/{table}/facets.json?_facet={column}&{arg}")
        assert answer.status == 200, answer.text[:300]
        facet = json.loads(answer.text)["facets"][column]
        expected = admin.execute(
            f'SELECT "{column}", count(*) FROM {schema}.{table} WHERE {where} '
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 31",
            (param,),
        ).fetchall()
        kinds |= {type(v).__name__ for v, _ in expected}
        got = [(v["value"], v["count"]) for v in facet["values"]]
        assert got == [(_as_json(v), n) for v, n in expected[:30]], column
        assert facet["truncated"] == (len(expected) > 30) and not facet["timed_out"]
    # The demo's own types were counted, not text: numeric totals, timestamps.
    assert kinds >= ({"int", "str", "Decimal", "datetime"} if table == "orders" else
                     {"int", "str", "datetime"})  # fmt: skip


def test_a_demo_facet_link_filters_to_exactly_its_count(pg_server):
    for column in ("total", "placed_at"):
        answer = httpraw.get(f"{pg_server.url}/tables/orders/facets.json?_facet={column}")
        value = json.loads(answer.text)["facets"][column]["values"][0]
        rows = httpraw.get(pg_server.url + value["url"].replace("/orders?", "/orders.csv?", 1))
        assert rows.status == 200 and rows.text.count("\r\n") - 1 == value["count"], value


def test_a_postgres_facet_past_its_time_limit_is_timed_out_in_time_and_the_table_streams(
    thread_server, pg_demo
):
    admin, schema = pg_demo
    started = time.monotonic()
    admin.execute(f"SELECT status, count(*) FROM {schema}.orders_x200 GROUP BY 1").fetchall()
    whole = time.monotonic() - started
    assert whole > 0.3  # the count really is slow: 4M rows made on every read
    app = _app(schema, 50)
    server = thread_server(app)
    try:
        started = time.monotonic()
        answer = httpraw.get(f"{server.url}/tables/orders_x200/facets.json?_facet=status")
        took = time.monotonic() - started
        assert answer.status == 200, answer.text[:300]
        facet = json.loads(answer.text)["facets"]["status"]
        assert facet == {"values": [], "truncated": False, "timed_out": True}
        assert took < 0.05 + 0.25, (took, whole)  # the limit, a margin for a loaded machine
        metrics = server.url + "/metrics"
        counted = metricsread.value(
            metrics, "tablestream_facet_timeouts_total", table="orders_x200"
        )
        assert counted == 1
        rows = httpraw.get(f"{server.url}/tables/orders_x200.csv?limit=5000")
        assert rows.status == 200 and rows.terminated and rows.text.count("\r\n") == 5001
    finally:
        app.extensions["tablestream"].catalog["orders"]._source.close()


def test_demo_db_dsn_builds_the_gin_index_and_the_demo_answers_a_search(pg_server, pg_demo):
    admin, schema = pg_demo
    (definition,) = admin.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'orders' "
        "AND indexname = 'orders_search'",
        (schema,),
    ).fetchone()
    assert "USING gin" in definition and "to_tsvector('english'" in definition
    expected = [str(r[0]) for r in admin.execute(
        f"SELECT id FROM {schema}.orders WHERE {VECTOR} @@ websearch_to_tsquery('english', %s) "
        "AND status = %s ORDER BY id", ("gift", "paid"))]  # fmt: skip
    assert 0 < len(expected) < ORDERS
    answer = httpraw.get(f"{pg_server.url}/tables/orders.csv?_search=gift&status=paid")
    assert answer.status == 200, answer.text[:300]
    assert [line.split(",")[0] for line in answer.text.splitlines()[1:]] == expected
