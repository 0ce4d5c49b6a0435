"""What programs get: the table described (/tables/<name>.json), downloads that name themselves,
and the format picked by Accept. Against a real waitress and the demo SQLite database."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tablestream import create_app
from tablestream.testing import httpraw

from .test_browser import browser  # noqa: F401 - the Chromium fixture, shared


@pytest.fixture
def server(thread_server, settings_for):
    return thread_server(create_app(settings_for()))


def test_a_table_description_gives_columns_types_nullability_key_count_and_urls(server, demo_db):
    response = httpraw.get(f"{server.url}/tables/orders.json")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    described = json.loads(response.body)
    with sqlite3.connect(demo_db) as db:
        count = db.execute("SELECT count(*) FROM orders").fetchone()[0]
        info = db.execute("PRAGMA table_info(orders)").fetchall()
    assert [c["name"] for c in described["columns"]] == [r[1] for r in info]
    by_name = {c["name"]: c for c in described["columns"]}
    assert by_name["id"] == {
        "name": "id",
        "type": "integer",
        "source_type": "INTEGER",
        "nullable": False,
    }
    assert by_name["total"]["type"] == "real" and by_name["total"]["nullable"] is False
    assert by_name["note"]["nullable"] is True
    assert described["key"] == "id" and described["row_count"] == count
    assert described["formats"] == {
        "html": "/tables/orders",
        "csv": "/tables/orders.csv",
        "ndjson": "/tables/orders.ndjson",
    }
    assert "isnull" in described["query"]["lookups"] and described["query"]["keyset"] is True


def test_a_table_description_is_revalidated_by_its_etag(server):
    first = httpraw.get(f"{server.url}/tables/orders.json")
    tag = first.headers["etag"]
    again = httpraw.get(f"{server.url}/tables/orders.json", headers={"If-None-Match": tag})
    assert again.status == 304 and again.body == b""
    other = httpraw.get(f"{server.url}/tables/customers.json", headers={"If-None-Match": tag})
    assert other.status == 200


def test_an_unknown_table_description_is_the_404_of_an_unknown_table(server):
    response = httpraw.get(f"{server.url}/tables/nope.json")
    assert response.status == 404 and "There is no table &#39;nope.json&#39;." in response.text


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/tables/orders.csv", "orders.csv"),
        ("/tables/orders.ndjson?limit=3", "orders.ndjson"),
        (
            "/tables/orders.csv?status=refunded&_sort_desc=total",
            "orders_status-refunded_sort-desc-total.csv",
        ),
        ("/tables/orders.csv?product__contains=a%20b", "orders_product__contains-a-b.csv"),
    ],
)
def test_a_download_names_itself_after_the_table_and_its_query(server, path, name):
    response = httpraw.get(f"{server.url}{path}")
    assert response.status == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="{name}"')
    assert "filename*=UTF-8''" in disposition


def test_the_html_page_is_not_an_attachment_and_every_format_says_utf_8(server):
    page = httpraw.get(f"{server.url}/tables/orders?limit=2")
    assert "content-disposition" not in page.headers
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert httpraw.get(f"{server.url}/tables/orders.csv?limit=2").headers["content-type"] == (
        "text/csv; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("accept", "first_line"),
    [
        ("text/csv", "id,customer_id,product,quantity,total,placed_at,status,note"),
        ("application/x-ndjson", '{"id":'),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "<!doctype html>"),
        ("*/*", "<!doctype html>"),
    ],
)
def test_accept_picks_the_format_when_the_url_does_not(server, accept, first_line):
    response = httpraw.get(f"{server.url}/tables/orders?limit=2", headers={"Accept": accept})
    assert response.status == 200 and response.text.startswith(first_line)
    assert "Accept" in response.headers["vary"]


def test_the_suffix_wins_over_accept(server):
    response = httpraw.get(
        f"{server.url}/tables/orders.csv?limit=2", headers={"Accept": "application/x-ndjson"}
    )
    assert response.text.startswith("id,customer_id")


@pytest.mark.browser
@pytest.mark.parametrize(
    ("href", "name"),
    [
        ("/tables/orders.csv?limit=3", "orders.csv"),
        # Only the header can give this name: the URL's last segment is "orders".
        ("/tables/orders?format=csv&status=refunded&limit=3", "orders_status-refunded.csv"),
    ],
)
def test_a_browser_saves_a_csv_download_under_the_name_the_service_gives(
    browser,  # noqa: F811 - the fixture imported above
    server,
    tmp_path,
    href,
    name,
):
    """Chromium, following a plain link (no ``download`` attribute), names the file from
    ``Content-Disposition``: ``orders.csv``, not ``orders`` without an extension."""
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/tables/orders?limit=1")
        page.evaluate(
            """(href) => { const a = document.createElement('a');
                 a.id = 'get-csv'; a.href = href; a.textContent = 'csv';
                 document.body.prepend(a); }""",
            href,
        )
        with page.expect_download() as info:
            page.click("#get-csv")
        download = info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
    finally:
        context.close()
    assert download.suggested_filename == name
    assert saved.read_text().startswith("id,customer_id,product")
