"""``?_search=``: the rows SQLite's own FTS5 ``MATCH`` gives, in every format and page by page.

A real waitress in front of the demo SQLite file (``tablestream demo-db`` builds ``orders_fts``
over ``product`` and ``note``); every answer is compared with what FTS5 says for the same words.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.query import parse_query
from tablestream.query.sql import POSTGRES, KeyWalk, key_walk
from tablestream.sources.search import pg_search_index
from tablestream.testing import httpraw

from .test_queries import _csv_ids, _follow

SEARCHES = [
    # (query string, the same rows as FTS5 and SQL give them: where, params, order)
    ({"_search": "gift"}, "", (), "o.id"),
    ({"_search": "widget OR rush", "customer_id__lt": "250"}, "AND o.customer_id < ?", (250,),
     "o.id"),
    ({"_search": '"fragile heavy"', "status": "paid"}, "AND o.status = ?", ("paid",), "o.id"),
    ({"_search": "spr*", "_sort_desc": "total"}, "", (), "o.total DESC, o.id DESC"),
    ({"_search": "gift NOT gadget", "quantity__gte": "5", "_sort": "placed_at"},
     "AND o.quantity >= ?", (5,), "o.placed_at, o.id"),
]  # fmt: skip


def _matched(db: Path, words: str, where: str, params: tuple, order: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT o.id FROM orders o WHERE o.id IN "
            f"(SELECT rowid FROM orders_fts WHERE orders_fts MATCH ?) {where} ORDER BY {order}",
            (words, *params),
        ).fetchall()
    conn.close()
    return [str(r[0]) for r in rows]


def _get(server, path: str) -> httpraw.RawResponse:
    return httpraw.get(server.url + path, timeout=30)


@pytest.fixture
def server(thread_server, settings_for):
    return thread_server(create_app(settings_for(synthetic_rows="100")))


@pytest.mark.parametrize(
    ("args", "where", "params", "order"), SEARCHES, ids=[urlencode(s[0]) for s in SEARCHES]
)
def test_search_gives_exactly_the_rows_fts5_matches_in_csv_ndjson_and_html_pages(
    server, demo_db, args, where, params, order
):
    expected = _matched(demo_db, args["_search"], where, params, order)
    assert 0 < len(expected) < 20_000  # the words select some rows, not all
    query = urlencode(args)
    csv_answer = _get(server, f"/tables/orders.csv?{query}")
    assert csv_answer.status == 200 and _csv_ids(csv_answer) == expected
    ndjson = _get(server, f"/tables/orders.ndjson?{query}")
    assert [str(json.loads(line)["id"]) for line in ndjson.text.splitlines()] == expected
    page = max(1, len(expected) // 3)  # three or four pages, continued by their _after links
    rows, urls = _follow(server, f"/tables/orders?{query}&limit={page}")
    assert [r[0] for r in rows] == expected
    assert len(urls) >= 3 and all("_after=" in u for u in urls[1:])


def test_search_syntax_the_index_refuses_is_a_400_that_says_what_it_takes(server):
    for words in ["USB-C", '"unterminated', "NOT gift", "nosuchcolumn: gift", "*"]:
        for path in (
            "/tables/orders?",
            "/tables/orders.csv?",
            "/tables/orders/facets.json?_facet=status&",
        ):
            answer = _get(server, f"{path}{urlencode({'_search': words})}")
            assert answer.status == 400, (words, path, answer.text[:300])
            assert "quoted phrases" in answer.text and "double quotes" in answer.text
    quoted = _get(server, "/tables/orders.csv?" + urlencode({"_search": '"USB-C"'}))
    assert quoted.status == 200 and len(_csv_ids(quoted)) > 0


def test_a_table_without_a_full_text_index_is_a_400_naming_the_tables_that_have_one(server):
    for path in ("/tables/customers", "/tables/nasty.csv", "/tables/synthetic.ndjson"):
        answer = _get(server, f"{path}?_search=gift")
        assert answer.status == 400, answer.text[:300]
        assert "has no full-text index" in answer.text and "searched: orders." in answer.text
    assert _get(server, "/tables/orders?_search=").status == 200  # an empty search box: no search


def test_full_text_indexes_are_not_served_as_tables(server, demo_db):
    with sqlite3.connect(demo_db) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"orders_fts", "orders_fts_data", "orders_fts_idx"} <= names
    index = _get(server, "/").text
    assert "orders_fts" not in index and "/tables/orders" in index
    for name in ("orders_fts", "orders_fts_data", "orders_fts_config"):
        assert _get(server, f"/tables/{name}").status == 404


def test_a_next_rows_link_of_one_search_does_not_continue_another(server):
    text = _get(server, "/tables/orders?_search=gift&limit=5").text
    link = text.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert _get(server, link).status == 200
    other = _get(server, link.replace("_search=gift", "_search=rush"))
    assert other.status == 400 and "does not belong to this query" in other.text


def test_facets_count_the_searched_rows(server, demo_db):
    answer = _get(server, "/tables/orders/facets.json?_facet=status&_search=gift&quantity__lt=4")
    assert answer.status == 200
    got = [(v["value"], v["count"]) for v in json.loads(answer.text)["facets"]["status"]["values"]]
    with sqlite3.connect(demo_db) as db:
        expected = db.execute(
            "SELECT status, count(*) FROM orders WHERE quantity < 4 AND id IN "
            "(SELECT rowid FROM orders_fts WHERE orders_fts MATCH 'gift') GROUP BY 1 "
            "ORDER BY 2 DESC, 1"
        ).fetchall()
    db.close()
    assert got == [tuple(r) for r in expected] and got


def test_an_index_over_a_column_the_caller_may_not_see_reads_as_no_index(
    thread_server, settings_for, tmp_path
):
    tokens = tmp_path / "tokens.toml"
    no_note = add_token(str(tokens), "no-note", tables=["*"], hide=["orders.note"])
    full = add_token(str(tokens), "full", tables=["orders"])
    server = thread_server(create_app(settings_for(tokens_file=str(tokens),
                                                   auth_failures_per_minute="0")))  # fmt: skip

    def get(path: str, token: str) -> httpraw.RawResponse:
        return httpraw.get(server.url + path, headers={"Authorization": f"Bearer {token}"})

    described = {
        (table, who): json.loads(get(f"/tables/{table}.json", token).text)["query"]["search"]
        for table in ("orders", "customers")
        for who, token in (("no-note", no_note), ("full", full))
        if (table, who) != ("customers", "full")
    }
    assert described == {
        ("orders", "no-note"): False,
        ("customers", "no-note"): False,
        ("orders", "full"): True,
    }
    hidden = get("/tables/orders?_search=gift", no_note)
    missing = get("/tables/customers?_search=gift", no_note)
    assert hidden.status == missing.status == 400
    assert "searched: none on this service." in hidden.text  # orders is not one, for this caller
    assert hidden.text.replace("orders", "customers") == missing.text
    assert get("/tables/orders/facets.json?_facet=status&_search=gift", no_note).status == 400
    assert get("/tables/orders.csv?_search=gift", full).status == 200


def test_only_an_fts5_table_with_the_table_as_its_content_makes_it_searchable(
    thread_server, tmp_path
):
    path = tmp_path / "own.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
            INSERT INTO notes VALUES (1, 'gift wrap'), (2, 'rush');
            CREATE VIRTUAL TABLE notes_fts USING fts5(body);  -- its own content, not notes'
            INSERT INTO notes_fts (rowid, body) SELECT id, body FROM notes;
            CREATE TABLE memos (id INTEGER PRIMARY KEY, body TEXT, secret TEXT);
            INSERT INTO memos VALUES (1, 'gift', 'x'), (2, 'rush gift', 'y'), (3, 'no', 'gift');
            CREATE VIRTUAL TABLE memos_fts USING fts5(body, content = "memos", content_rowid=id);
            INSERT INTO memos_fts (memos_fts) VALUES ('rebuild');
            """
        )
    db.close()
    server = thread_server(create_app({"db": str(path), "synthetic_rows": "0"}))
    refused = _get(server, "/tables/notes?_search=gift")
    assert refused.status == 400 and "searched: memos." in refused.text
    assert _csv_ids(_get(server, "/tables/memos.csv?_search=gift")) == ["1", "2"]
    assert "notes_fts" not in _get(server, "/").text  # an index, even of its own content


def test_postgres_indexes_other_than_a_tsvector_expression_are_not_search_indexes():
    assert pg_search_index([("trgm", "lower(name)", None, ["name"])]) is None
    assert (
        pg_search_index([("no", "to_tsvector('simple'::regconfig, 'x'::text)", None, [])]) is None
    )
    found = pg_search_index([("t", "to_tsvector('simple'::regconfig, name)", None, ["name"])])
    assert found is not None and found.columns == {"name"}
    assert found.condition.endswith("websearch_to_tsquery('simple'::regconfig, %s)")


def test_a_postgres_search_in_key_order_is_a_key_walk_and_one_in_another_order_is_not():
    index = pg_search_index([("t", "to_tsvector('simple'::regconfig, name)", None, ["name"])])
    assert index is not None
    types = {"id": "integer", "name": "text", "n": "integer"}

    def walk(key: str | None = "id", **args: str) -> KeyWalk | None:
        q = parse_query({k: [v] for k, v in {"_search": "a", **args}.items()}, list(types), types)
        return key_walk(POSTGRES, replace(q, after=("7",)), key, ("s", "t"), index)

    key, n = '"s"."t"."id"', '"s"."t"."n"'
    assert walk(n__gt="1") == KeyWalk(
        key=key,
        where=f" WHERE {index.condition} AND {n} > %s AND {key} > %s",
        window=f" WHERE {key} > %s ORDER BY {key}",
        params=("a", 1, 7, 7),  # the where's, then the window's: the rows after _after
    )
    assert walk(key=None) is None  # no key: no order to walk
    for sort in ("_sort", "_sort_desc"):  # the planner's own choice: the key's NULLS FIRST/LAST
        for column in ("n", "id"):  # is not its index's order, so a sort on it sorts too
            q = parse_query({"_search": ["a"], sort: [column]}, list(types), types)
            assert key_walk(POSTGRES, q, "id", ("s", "t"), index) is None
