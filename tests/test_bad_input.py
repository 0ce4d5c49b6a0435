"""Requests the service refuses: each gets its status and a message saying what is allowed."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=-1", "limit=&#39;-1&#39; is not a whole number; expected a whole number from 0 to"),
        ("limit=abc", "limit=&#39;abc&#39; is not a whole number"),
        ("limit=1.5", "is not a whole number"),
        ("limit=", "limit=&#39;&#39; is not a whole number"),
        ("limit=%EF%BC%91", "is not a whole number"),  # a full-width digit is not a digit here
        ("limit=99999999999", "limit=99999999999 is too large; expected a whole number from 0 to"),
        ("offset=-3", "offset=&#39;-3&#39; is not a whole number"),
        ("offset=1e9", "offset=&#39;1e9&#39; is not a whole number"),
        ("limit=1&limit=2", "limit is given 2 times; give it once"),
    ],
)
def test_bad_limit_or_offset_is_a_400_that_says_what_is_allowed(client, query, message):
    response = client.get(f"/tables/synthetic?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)


def test_unknown_table_is_a_404_listing_the_known_tables(client):
    response = client.get("/tables/no_such_table")
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "There is no table &#39;no_such_table&#39;." in body
    for name in ("customers", "orders", "nasty", "synthetic"):
        assert f'href="/tables/{name}"' in body


def test_a_table_name_with_markup_is_escaped_in_the_404(client):
    response = client.get("/tables/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404
    assert "<script>alert(1)" not in response.get_data(as_text=True)


def test_wrong_method_is_a_405_page_that_says_which_methods_are_allowed(client):
    response = client.post("/tables/synthetic")
    assert response.status_code == 405
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "POST is not allowed on /tables/synthetic; allowed: GET, HEAD, OPTIONS." in text
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_limit_at_the_cap_is_accepted(client):
    response = client.get("/tables/synthetic?limit=10000000&offset=1999999")
    assert response.status_code == 200
    assert 'data-rows-sent="1"' in response.get_data(as_text=True)


def test_offset_past_the_end_is_an_empty_complete_table(client):
    response = client.get("/tables/orders?offset=999999")
    assert response.status_code == 200
    assert 'data-rows-sent="0"' in response.get_data(as_text=True)


def test_index_lists_every_table_with_its_source_and_columns(client):
    body = client.get("/").get_data(as_text=True)
    assert 'href="/tables/orders"' in body and "sqlite" in body
    assert 'href="/tables/nasty"' in body and "csv" in body
    assert "2,000,000" in body  # synthetic row count is cheap to know
    assert "id, customer_id, product, quantity, total, placed_at, status, note" in body


def test_health_and_readiness_answer_while_serving(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_data(as_text=True) == "ready\n"
