"""Issue 32: a page asked with ``?_facet=`` shows its facets, in Debian's Chromium.

The counts come from ``facets.json`` in a request of the page's own script, beside the stream;
values from the data are shown as text (a value that is markup stays text), each a link that adds
its filter; a count over the time limit says so while the table still streams to the end.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tablestream import create_app

from .test_browser import (  # noqa: F401 - browser and page: fixtures, passed by name
    STATUS,
    _screenshot,
    _wait_for_state,
    _wait_until,
    browser,
    page,
)

pytestmark = [pytest.mark.browser]

NASTY = '<img src=x onerror="window.pwned=1">'


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "facets.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, kind TEXT, size INTEGER)")
        kinds = ["plain"] * 3 + [NASTY] * 2 + [None] + ['b&c "q"']
        db.executemany(
            "INSERT INTO items (kind, size) VALUES (?, ?)",
            [(k, i % 2) for i, k in enumerate(kinds)],
        )
        # A view whose count takes far longer than the limit; its first rows come at once.
        db.execute("CREATE TABLE n (v INTEGER)")
        db.executemany("INSERT INTO n VALUES (?)", [(i,) for i in range(2000)])
        db.execute("CREATE VIEW cubed AS SELECT a.v AS v FROM n a, n b, n c")
    db.close()
    return path


def _facet_values(tab, column: str) -> list[tuple[str, str]]:
    return [
        tuple(pair)
        for pair in tab.evaluate(
            """(c) => [...document.querySelectorAll(`#ts-facets .ts-facet[data-column="${c}"] li`)]
            .map(li => [li.firstElementChild.textContent, li.lastElementChild.textContent])""",
            column,
        )
    ]


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_shows_its_facets_as_escaped_links_that_add_the_filter(
    page,  # noqa: F811 - the imported fixture's value
    thread_server,
    shop,
):
    app = create_app({"db": str(shop), "synthetic_rows": "0", "facet_time_limit_ms": "5000"})
    url = thread_server(app).url
    page.goto(f"{url}/tables/items?_facet=kind&_facet=size&limit=50")
    _wait_until(page, "document.getElementById('ts-facets').dataset.state === 'done'")
    assert _facet_values(page, "kind") == [
        ("plain", "3"),
        (NASTY, "2"),  # the markup of a value is its text: no <img> was made, nothing ran
        ("(empty)", "1"),
        ('b&c "q"', "1"),
    ]
    assert _facet_values(page, "size") == [("0", "4"), ("1", "3")]
    assert page.evaluate("document.querySelectorAll('#ts-facets img').length") == 0
    assert page.evaluate("window.pwned === undefined")
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    _screenshot(page, "facets")

    # A value's link filters the table and keeps the facets, counted in the new filter.
    page.locator("#ts-facets .ts-facet[data-column=kind] a", has_text=NASTY).click()
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    assert page.locator("#ts-table tbody tr").count() == 2
    _wait_until(page, "document.getElementById('ts-facets').dataset.state === 'done'")
    assert _facet_values(page, "kind") == [(NASTY, "2")]
    assert _facet_values(page, "size") == [("0", "1"), ("1", "1")]
    # NULL is its own value, and its link asks for the empty cells.
    page.go_back()
    _wait_until(page, "document.getElementById('ts-facets').dataset.state === 'done'")
    page.locator("#ts-facets .ts-null").click()
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    assert "kind__isnull=1" in page.url
    assert page.locator("#ts-table tbody tr").count() == 1
    assert page.problems == []


def test_a_facet_over_the_time_limit_says_so_and_the_table_still_streams(
    page,  # noqa: F811 - the imported fixture's value
    thread_server,
    shop,
):
    app = create_app({"db": str(shop), "synthetic_rows": "0", "facet_time_limit_ms": "100"})
    url = thread_server(app).url
    page.goto(f"{url}/tables/cubed?_facet=v&limit=3000")
    _wait_until(page, "document.getElementById('ts-facets').dataset.state === 'done'")
    note = page.locator("#ts-facets .ts-facet[data-column=v] .ts-facet-timeout")
    assert "took longer than the server's limit" in note.inner_text()
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    assert page.locator(STATUS).inner_text() == "3,000 rows, complete"
    assert page.problems == []


def test_a_facet_the_server_refuses_is_shown_with_the_servers_reason(
    page,  # noqa: F811 - the imported fixture's value
    thread_server,
    shop,
):
    app = create_app({"db": str(shop), "synthetic_rows": "0"})
    url = thread_server(app).url
    page.goto(f"{url}/tables/items?_facet=colour")
    _wait_until(page, "document.getElementById('ts-facets').dataset.state === 'done'")
    text = page.locator("#ts-facets .ts-facet-error").inner_text()
    assert text.startswith("facets could not be counted (400): ") and "not a column" in text
    assert "{" not in text  # the JSON refusal's message, not the JSON
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
