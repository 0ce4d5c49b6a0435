"""``?_search=`` and facets on PostgreSQL: the rows its own ``@@`` gives, the counts its own
``GROUP BY`` gives.

The demo orders are copied into a scratch schema with the demo's GIN index on
``to_tsvector('english', product || ' ' || coalesce(note, ''))`` (``DEMO_SEARCH_PG``), found by
the service in the catalogue; a second table has no index. Needs the project's PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest

from tablestream import create_app
from tablestream.query import open_query, parse_query
from tablestream.query.sql import POSTGRES, clauses, key_walk
from tablestream.sources.demo import DEMO_SEARCH_PG
from tablestream.sources.pgplan import SORT, WALK, WALK_THEN_SORT, plan_search, sort_matches
from tablestream.testing import httpraw

from .pg import DSN, copy_demo_orders, scratch_schema
from .tablehtml import parse_table
from .test_facets import COLUMNS
from .test_queries import _csv_ids, _follow

pytestmark = pytest.mark.postgres

VECTOR = "to_tsvector('english', product || ' ' || coalesce(note, ''))"


@pytest.fixture(scope="module")
def pg_schema(demo_db: Path) -> Iterator[tuple]:
    with scratch_schema("ts_search") as (admin, schema):
        copy_demo_orders(admin, schema, demo_db)
        admin.execute(f"SET search_path = {schema}")
        admin.execute(DEMO_SEARCH_PG)
        admin.execute("CREATE TABLE plain (id integer PRIMARY KEY, word text)")
        admin.execute("INSERT INTO plain VALUES (1, 'gift'), (2, 'rush')")
        # A stored generated tsvector column with its GIN index: searched as itself.
        admin.execute(
            "CREATE TABLE memos (id integer PRIMARY KEY, title text, body text, secret text, "
            "words tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(title, '') "
            "|| ' ' || coalesce(body, ''))) STORED)"
        )
        admin.execute("CREATE INDEX memos_words ON memos USING gin (words)")
        admin.execute(
            "INSERT INTO memos (id, title, body, secret) VALUES (1, 'fragile', 'heavy box', "
            "'gift'), (2, 'heavy', 'fragile', 'x'), (3, 'gifts', 'fragile heavy', 'y')"
        )
        admin.execute("ANALYZE orders")
        yield admin, schema


@pytest.fixture(scope="module")
def pg_app(pg_schema):
    _, schema = pg_schema
    app = create_app(
        {
            "db": "",
            "synthetic_rows": "0",
            "pg_dsn": DSN,
            "pg_tables": f"{schema}.orders,{schema}.plain,{schema}.memos",
            "facet_time_limit_ms": "5000",
        }
    )
    yield app
    app.extensions["tablestream"].catalog["orders"]._source.close()  # the pool's connections


@pytest.fixture
def pg_server(thread_server, pg_app):
    return thread_server(pg_app)


def _get(server, path: str) -> httpraw.RawResponse:
    return httpraw.get(server.url + path, timeout=30)


SEARCHES = [
    ({"_search": "gift"}, "", (), "id"),
    ({"_search": '"fragile heavy" or rush', "status": "paid"}, "AND status = %s", ("paid",), "id"),
    ({"_search": "gift -gadget", "_sort_desc": "total"}, "", (), "total DESC, id DESC"),
]


def _matching_ids(pg_schema, args: dict, where: str, params: tuple, order: str) -> list[str]:
    """The ids PostgreSQL's own ``@@`` finds for ``args["_search"]``, ``where``, in ``order``."""
    admin, schema = pg_schema
    return [
        str(r[0])
        for r in admin.execute(
            f"SELECT id FROM {schema}.orders WHERE {VECTOR} @@ "
            f"websearch_to_tsquery('english', %s) {where} ORDER BY {order}",
            (args["_search"], *params),
        )
    ]


@pytest.mark.parametrize(
    ("args", "where", "params", "order"), SEARCHES, ids=[urlencode(s[0]) for s in SEARCHES]
)
def test_search_gives_exactly_the_rows_postgres_matches_in_csv_ndjson_and_html_pages(
    pg_server, pg_schema, args, where, params, order
):
    expected = _matching_ids(pg_schema, args, where, params, order)
    assert 0 < len(expected) < 20_000
    query = urlencode(args)
    assert _csv_ids(_get(pg_server, f"/tables/orders.csv?{query}")) == expected
    ndjson = _get(pg_server, f"/tables/orders.ndjson?{query}").text.splitlines()
    assert [str(json.loads(line)["id"]) for line in ndjson] == expected
    rows, urls = _follow(pg_server, f"/tables/orders?{query}&limit={max(1, len(expected) // 3)}")
    assert [r[0] for r in rows] == expected and len(urls) >= 3


PLANS = [
    # (query string, the same rows by @@: where, params, order; how sources/pgplan.py finds them)
    # A fifth of the rows: walked all the way.
    ({"_search": "gift or rush"}, "", (), "id", "walk"),
    # Any _sort, the key's own too, is left to the planner.
    ({"_search": "gift or rush", "_sort_desc": "id"}, "", (), "id DESC", "planner"),
    # A tenth, which the planner guesses at a hundredth (and so sorted them all): the first
    # rows walked, the rest sorted by a second cursor.
    ({"_search": '"fragile heavy"'}, "", (), "id", "walk, then sort"),
    # A fortieth of those: sorting them beats walking past 400 rows for each.
    ({"_search": '"fragile heavy"', "customer_id__lt": "13"}, "AND customer_id < %s", (13,),
     "id", "sort"),
    ({"_search": "zzzqx"}, "", (), "id", "sort"),  # a word in no row
    ({"_search": '"heavy fragile"'}, "", (), "id", "sort"),  # both words in many rows, never so
    ({"_search": "gift", "_sort_desc": "total"}, "", (), "total DESC, id DESC", "planner"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "where", "params", "order", "plan"), PLANS, ids=[urlencode(s[0]) for s in PLANS]
)
def test_a_search_walks_or_sorts_as_its_probe_says_and_gives_exactly_the_rows_of_at_at(
    pg_server, pg_app, pg_schema, args, where, params, order, plan
):
    expected = _matching_ids(pg_schema, args, where, params, order)
    table = pg_app.extensions["tablestream"].catalog["orders"]
    q = parse_query({k: [v] for k, v in args.items()}, table.columns(), table.column_types())
    stream = open_query(table, q, "id", None, 0, 10_000)
    try:
        assert stream.search_plan == plan
    finally:
        stream.close()
    query = urlencode(args)
    assert _csv_ids(_get(pg_server, f"/tables/orders.csv?{query}")) == expected
    ndjson = _get(pg_server, f"/tables/orders.ndjson?{query}").text.splitlines()
    assert [str(json.loads(line)["id"]) for line in ndjson] == expected
    rows, urls = _follow(pg_server, f"/tables/orders?{query}&limit={max(1, len(expected) // 3)}")
    assert [r[0] for r in rows] == expected and len(urls) >= (3 if expected else 1)
    page = parse_table(_get(pg_server, f"/tables/orders?{query}&limit=10").text)
    assert [r[0] for r in page.rows] == expected[:10]  # within the first fetch: one cursor


def test_the_probes_choice_is_the_plan_postgres_then_makes(pg_app):
    table = pg_app.extensions["tablestream"].catalog["orders"]
    index = table.search_index()
    name = ".".join(f'"{part}"' for part in table.sql_name)
    walked = "Index Scan using orders_pkey"  # the key's index, each row tested, no sort
    sorted_ = "Bitmap Index Scan on orders_search"  # the GIN index's matches, sorted
    for words, way in (
        ("gift or rush", WALK),
        ('"fragile heavy"', WALK_THEN_SORT),
        ("zzzqx", SORT),
    ):
        q = parse_query({"_search": [words]}, table.columns(), table.column_types())
        tail, params = clauses(POSTGRES, q, "id", table.sql_name, index)
        walk = key_walk(POSTGRES, q, "id", table.sql_name, index)
        with psycopg.connect(DSN) as conn:  # one transaction, rolled back
            explain = f"EXPLAIN SELECT * FROM {name}{tail}"
            assert plan_search(conn, table.identifier, walk, 32, 256) == way
            first = "\n".join(r[0] for r in conn.execute(explain, params))
            sort_matches(conn)  # what the stream does after a walk's first rows
            rest = "\n".join(r[0] for r in conn.execute(explain, params))
            conn.rollback()
        if way == SORT:
            assert sorted_ in first and "Sort Key" in first, first
        else:
            assert walked in first and "Sort Key" not in first, first
        assert sorted_ in rest and "Sort Key" in rest, rest


def test_a_postgres_table_without_a_gin_index_is_a_400_naming_the_searchable_ones(pg_server):
    answer = _get(pg_server, "/tables/plain?_search=gift")
    assert answer.status == 400 and "searched: orders, memos." in answer.text


def test_a_stored_generated_tsvector_column_is_searched_through_its_gin_index(pg_server, pg_schema):
    admin, schema = pg_schema
    for words, ids in [
        ('"fragile heavy"', ["1", "3"]),
        ("gift", ["3"]),
        ("heavy -box", ["2", "3"]),
    ]:
        assert (
            _csv_ids(_get(pg_server, "/tables/memos.csv?" + urlencode({"_search": words}))) == ids
        )
        expected = admin.execute(
            f"SELECT id FROM {schema}.memos WHERE words @@ websearch_to_tsquery('english', %s) "
            "ORDER BY id",
            (words,),
        ).fetchall()
        assert [str(r[0]) for r in expected] == ids


def test_postgres_facet_counts_equal_its_group_by_in_the_same_filter_and_search(
    pg_server, pg_schema
):
    admin, schema = pg_schema
    for column in COLUMNS:
        for extra, where, params in [
            ("", "", ()),
            ("&_search=gift", f"AND {VECTOR} @@ websearch_to_tsquery('english', %s)", ("gift",)),
        ]:
            answer = _get(pg_server, f"/tables/orders/facets.json?_facet={column}"
                                     f"&quantity__gte=3{extra}")  # fmt: skip
            assert answer.status == 200, answer.text[:300]
            facet = json.loads(answer.text)["facets"][column]
            expected = admin.execute(
                f'SELECT "{column}", count(*) FROM {schema}.orders WHERE quantity >= 3 {where} '
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 31",
                params,
            ).fetchall()
            got = [(v["value"], v["count"]) for v in facet["values"]]
            assert got == [(v, n) for v, n in expected[:30]], (column, extra)
            assert facet["truncated"] == (len(expected) > 30) and not facet["timed_out"]


def test_a_postgres_search_sends_csv_from_its_cursor_not_a_copy_planned_for_every_match(pg_app):
    table = pg_app.extensions["tablestream"].catalog["orders"]
    columns, types = table.columns(), table.column_types()
    ways = {}
    for name, args in (("search", {"_search": ["gift"]}), ("filter", {"note": ["gift"]})):
        # Columns whose text the server writes (not the copy's double precision total).
        q = parse_query({**args, "_cols": ["id,product,note"]}, columns, types)
        stream = open_query(table, q, "id", None, 0, 10_000)
        try:
            lines = stream.csv_lines("", False)
            ways[name] = lines is not None
            if lines is not None:
                assert next(iter(lines)).endswith(",gift\r\n")  # the server's CSV lines
        finally:
            stream.close()
    assert ways == {"search": False, "filter": True}
