"""Filters, sort, columns and keyset pages from the URL, checked against the database itself.

A real waitress in front of the demo SQLite file (and a CSV export of it); every answer is
compared with what SQLite says for the same question.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablestream import create_app
from tablestream.testing import httpraw

from .servers import wait_for
from .tablehtml import parse_table


@pytest.fixture(scope="module")
def orders_csv(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csvq") / "orders.csv"
    with sqlite3.connect(demo_db) as db, path.open("w", newline="", encoding="utf-8") as f:
        cur = db.execute("SELECT * FROM orders ORDER BY id")
        writer = csv.writer(f)
        writer.writerow([d[0] for d in cur.description])
        writer.writerows(("" if v is None else v for v in row) for row in cur)
    return path


@pytest.fixture
def server(thread_server, settings_for, orders_csv):
    app = create_app(settings_for(csv=f"orders_csv={orders_csv}", synthetic_rows="5000"))
    return thread_server(app)


def _ids(db: Path, where: str, params: tuple = (), order: str = "id") -> list[str]:
    with sqlite3.connect(db) as conn:
        return [
            str(r[0])
            for r in conn.execute(f"SELECT id FROM orders {where} ORDER BY {order}", params)
        ]


def _get(server, path: str) -> httpraw.RawResponse:
    response = httpraw.get(server.url + path, timeout=30)
    return response


def _csv_ids(response: httpraw.RawResponse) -> list[str]:
    lines = response.text.splitlines()
    return [line.split(",", 1)[0] for line in lines[1:]]


FILTERS = [
    ({"status": "refunded"}, "WHERE status = ?", ("refunded",)),
    ({"customer_id": "42"}, "WHERE customer_id = ?", (42,)),
    ({"total__gt": "1000.5"}, "WHERE total > ?", (1000.5,)),
    ({"total__lte": "31"}, "WHERE total <= ?", (31.0,)),
    (
        {"quantity__gte": "4", "status__not": "paid"},
        "WHERE quantity >= ? AND status IS NOT ?",
        (4, "paid"),
    ),
    ({"product__contains": "ock"}, "WHERE instr(product, ?) > 0", ("ock",)),
    ({"product__startswith": "Wid"}, "WHERE instr(product, ?) = 1", ("Wid",)),
    ({"status__in": "paid,refunded"}, "WHERE status IN (?, ?)", ("paid", "refunded")),
    ({"note__isnull": "1"}, "WHERE note IS NULL", ()),
    (
        {"note__isnull": "0", "customer_id__lt": "50"},
        "WHERE note IS NOT NULL AND customer_id < ?",
        (50,),
    ),
]


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@pytest.mark.parametrize(
    ("args", "where", "params"), FILTERS, ids=[urlencode(f[0]) for f in FILTERS]
)
def test_a_filter_streams_exactly_the_rows_sqlite_finds_in_every_format(
    server, demo_db, args, where, params
):
    expected = _ids(demo_db, where, params)
    assert expected, "the demo data should have rows for every filter here"
    query = urlencode(args)
    page = parse_table(_get(server, f"/tables/orders?{query}").text)
    assert page.rows_sent == len(expected)
    assert [row[0] for row in page.rows] == expected
    assert _csv_ids(_get(server, f"/tables/orders.csv?{query}")) == expected
    lines = _get(server, f"/tables/orders.ndjson?{query}").text.splitlines()
    assert [str(json.loads(line)["id"]) for line in lines] == expected
    assert all(isinstance(json.loads(line)["id"], int) for line in lines)  # typed NDJSON


def test_the_same_status_filter_on_the_csv_source_gives_the_same_rows(server, demo_db):
    expected = _ids(demo_db, "WHERE status = ?", ("refunded",))
    page = parse_table(_get(server, "/tables/orders_csv?status=refunded").text)
    assert page.rows_sent == len(expected) and [r[0] for r in page.rows] == expected
    assert _csv_ids(_get(server, "/tables/orders_csv.csv?status=refunded")) == expected


def test_a_descending_sort_is_the_databases_order_with_ties_broken_by_the_key(server, demo_db):
    expected = _ids(demo_db, "", order="total DESC, id DESC")
    response = _get(server, "/tables/orders.csv?_sort_desc=total")
    assert _csv_ids(response) == expected
    ascending = _ids(demo_db, "WHERE status = 'paid'", order="placed_at ASC, id ASC")
    assert _csv_ids(_get(server, "/tables/orders.csv?status=paid&_sort=placed_at")) == ascending


def test_columns_are_chosen_and_ordered_by_col_and_cols(server):
    first = _get(server, "/tables/orders.csv?_col=total&_col=id&limit=2").text.splitlines()
    assert first[0] == "total,id"
    second = _get(server, "/tables/orders.csv?_cols=status,id&limit=2").text.splitlines()
    assert second[0] == "status,id"
    page = parse_table(_get(server, "/tables/orders?_cols=product&limit=3").text)
    assert page.columns == ["product"] and all(len(r) == 1 for r in page.rows)


def _follow(server, path: str, limit_pages: int = 200) -> tuple[list[list[str]], list[str]]:
    """Every row of every page reached by following the 'next rows' links from ``path``."""
    rows, urls = [], []
    for _ in range(limit_pages):
        text = _get(server, path).text
        page = parse_table(text)
        assert page.rows_sent == len(page.rows)
        rows.extend(page.rows)
        urls.append(path)
        marker = 'rel="next" href="'
        if marker not in text:
            return rows, urls
        path = text.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    raise AssertionError("more pages than expected")


@pytest.mark.parametrize(
    ("query", "where", "order"),
    [
        ("status=refunded", "WHERE status = 'refunded'", "id"),
        ("customer_id__lt=30&_sort_desc=total", "WHERE customer_id < 30", "total DESC, id DESC"),
        ("status=paid&_sort=placed_at", "WHERE status = 'paid'", "placed_at, id"),
    ],
)
def test_following_next_rows_links_gives_every_row_once_in_order(
    server, demo_db, query, where, order
):
    expected = _ids(demo_db, where, order=order)
    size = max(7, len(expected) // 5)
    rows, urls = _follow(server, f"/tables/orders?{query}&limit={size}")
    assert [r[0] for r in rows] == expected
    assert all("_after=" in url for url in urls[1:])  # keyset, not offset
    assert len(urls) == -(-len(expected) // size) + (len(expected) % size == 0)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_the_synthetic_table_continues_by_key_and_sorts_only_when_bounded(server):
    rows, urls = _follow(server, "/tables/synthetic?status=refunded&limit=300")
    assert [int(r[0]) for r in rows] == list(range(4, 5001, 5))  # every 5th row is refunded
    assert all("_after=" in url for url in urls[1:])
    refused = _get(server, "/tables/synthetic?_sort=amount")
    assert refused.status == 400 and "TABLESTREAM_SORT_ROWS" in refused.text
    top = parse_table(_get(server, "/tables/synthetic?_sort_desc=amount&limit=5").text)
    amounts = [float(r[3]) for r in top.rows]
    assert amounts == sorted(amounts, reverse=True) and len(amounts) == 5
    everything = parse_table(_get(server, "/tables/synthetic?limit=5000").text)
    assert amounts[0] == max(float(r[3]) for r in everything.rows)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("nope=1", "'nope' is neither a column nor COLUMN__LOOKUP"),
        ("total__between=1", "'between' in 'total__between' is not a lookup"),
        ("total__gt=abc", "total is a number column; expected a finite number, not 'abc'"),
        ("customer_id=99999999999999999999", "expected a whole number from"),
        ("total=nan", "expected a finite number, not 'nan'"),
        ("_sort=total&_sort_desc=id", "give _sort or _sort_desc, not both"),
        ("_sort=nope", "_sort names the column 'nope'"),
        ("_col=id&_col=id", "chosen twice"),
        ("_after=!!!", "_after is not a continuation token"),
        ("_bogus=1", "'_bogus' is not an option"),
        ("note__isnull=maybe", "expected 1 (is null) or 0 (is not null)"),
        ("status=a%00b", "contains a NUL character"),
    ],
)
def test_a_query_that_cannot_be_served_is_a_400_that_says_why(server, query, says):
    response = _get(server, f"/tables/orders?{query}")
    assert response.status == 400
    assert says in response.text.replace("&#39;", "'"), response.text


def test_the_page_shows_the_filters_and_sort_with_links_that_remove_them(server):
    text = _get(server, "/tables/orders?status=paid&status__not=x&_sort_desc=total&limit=5").text
    assert "status = paid" in text and "sorted by total, descending" in text
    assert 'href="/tables/orders?status__not=x&amp;_sort_desc=total&amp;limit=5"' in text
    assert 'href="/tables/orders?status=paid&amp;status__not=x&amp;limit=5"' in text
    # Headers sort: the sorted column flips to ascending, another starts ascending.
    assert 'href="/tables/orders?status=paid&amp;status__not=x&amp;limit=5&amp;_sort=total"' in text
    assert '_sort=product"' in text
    last = _get(server, "/tables/orders?customer_id=42&limit=100000").text
    assert 'rel="next"' not in last  # fewer rows than the limit: the table's last page


def test_the_access_log_names_the_filters_and_hides_their_values_when_told(
    thread_server, settings_for, caplog
):
    caplog.set_level(logging.INFO, logger="tablestream.access")
    for values in (True, False):
        server = thread_server(create_app(settings_for(log_filter_values=str(values).lower())))
        _get(
            server,
            f"/tables/orders.csv?customer_id=42&limit=3&v={values}".replace("&v=", "&status__not="),
        )
    lines = wait_for(
        lambda: (
            [json.loads(r.getMessage()) for r in caplog.records if "customer_id" in r.getMessage()]
            if len([r for r in caplog.records if "customer_id" in r.getMessage()]) >= 2
            else None
        ),
        10,
        "two access log lines",
    )
    shown, hidden = lines
    assert shown["filters"] == hidden["filters"] == ["customer_id", "status__not"]
    assert "customer_id=42" in shown["query"] and "status__not=True" in shown["query"]
    assert hidden["query"] == "customer_id=REDACTED&limit=3&status__not=REDACTED"


def test_a_hidden_column_cannot_be_filtered_sorted_or_chosen(thread_server, settings_for, tmp_path):
    from tablestream.access.tokens import add_token

    tokens = tmp_path / "t.toml"
    token = add_token(str(tokens), "a", tables=["*"], hide=["orders.note"])
    server = thread_server(create_app(settings_for(tokens_file=str(tokens))))
    auth = {"Authorization": f"Bearer {token}"}
    for query in ("note__isnull=1", "_sort=note&limit=3", "_col=note", "note=x"):
        response = httpraw.get(f"{server.url}/tables/orders?{query}", headers=auth)
        assert response.status == 400, query
        # Refused like a column the table does not have, and not listed among those it has.
        assert "placed_at, status, note" not in response.text
        assert "id, customer_id, product, quantity, total, placed_at, status" in response.text
    shown = httpraw.get(f"{server.url}/tables/orders.csv?status=paid&limit=2", headers=auth)
    assert shown.text.splitlines()[0] == "id,customer_id,product,quantity,total,placed_at,status"


_NASTY = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "'; DROP TABLE orders; --",
            '" OR 1=1 --',
            "1; DELETE FROM orders",
            "/* */",
            "\x00",
            "9" * 400,
            "-9223372036854775809",
            "1e999",
            "%",
            "_",
            "\\",
            "表",
            "",
            ",",
        ]
    ),
)
_NAMES = st.one_of(
    st.sampled_from(["id", "customer_id", "total", "status", "note", "placed_at", "quantity"]),
    st.text(max_size=20),
)
_LOOKUP = st.sampled_from(
    [
        "",
        "__gt",
        "__gte",
        "__lt",
        "__lte",
        "__not",
        "__contains",
        "__startswith",
        "__in",
        "__isnull",
        "__x",
        "__",
    ]
)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.lists(
        st.tuples(st.builds(lambda n, lk: n + lk, _NAMES, _LOOKUP), _NASTY), max_size=4
    ),
    sort=st.one_of(st.none(), st.tuples(st.sampled_from(["_sort", "_sort_desc"]), _NAMES)),
)
def test_fuzzed_filters_get_200_or_a_400_that_says_why_and_never_touch_the_database(
    settings_for, demo_db, params, sort
):
    app = _fuzz_app(settings_for)
    before = _digest(demo_db)
    query = list(params) + ([sort] if sort else []) + [("limit", "50")]
    for fmt in ("", ".csv"):
        response = app.test_client().get(f"/tables/orders{fmt}?{urlencode(query)}")
        body = response.get_data(as_text=True)  # the whole stream, then closed
        response.close()
        assert response.status_code in (200, 400), (query, response.status_code)
        if response.status_code == 400:
            assert 'class="ts-error-message"' in body
    assert _digest(demo_db) == before


_APP: list = []


def _fuzz_app(settings_for):
    if not _APP:
        _APP.append(create_app(settings_for()))
    return _APP[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_chosen_columns_on_a_table_with_its_own_row_template_take_the_default_markup(server):
    # templates/tables/demo/orders.html writes every column of orders; a page of fewer columns
    # cannot use it and must not fail because of it.
    text = _get(server, "/tables/orders?_cols=total,id&limit=3").text
    page = parse_table(text)
    assert page.columns == ["total", "id"] and page.rows_sent == 3
    assert all(len(row) == 2 for row in page.rows)
    assert "ts-badge" not in text
