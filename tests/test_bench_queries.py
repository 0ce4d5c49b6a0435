"""Issue 32's benchmark measures what its targets name: the keyset page a reader reaches next, in
every format, and a 10M-row facet judged on the stream that ran beside it.

``bench/facets_search_limit.py`` takes the keyset page's ``_after`` from a real first page's
"next rows" link; a wrong token would time an error or the first page again, so the pages are
checked against a real server here. ``bench/big_facets.py``'s verdict is checked against
figures given here: a facet over the limit, a cut stream, or facets asked after the stream had
ended must each fail it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace

from bench.big_facets import BigFacets, big_facets_verdict
from bench.facets_search_limit import PAGE, keyset_urls
from tablestream.testing import httpraw


def test_the_keyset_page_measured_follows_the_first_pages_last_row_in_every_format(
    process_server, demo_db
):
    server = process_server(TABLESTREAM_DB=str(demo_db), TABLESTREAM_LOG_LEVEL="warning")
    base = server.url + "/tables/orders"
    two_pages = httpraw.get(f"{base}.csv?_search=gift&limit={2 * PAGE}").text
    expected = [row[0] for row in csv.reader(io.StringIO(two_pages))][PAGE + 1 :]
    assert len(expected) == PAGE  # the demo has more than two pages of "gift"

    urls = keyset_urls(base, "_search=gift")
    assert urls is not None and set(urls) == {"page", "CSV", "NDJSON"}
    assert all("_after=" in url and "_search=gift" in url for url in urls.values())
    as_csv = httpraw.get(urls["CSV"])
    as_ndjson = httpraw.get(urls["NDJSON"])
    as_page = httpraw.get(urls["page"])
    assert as_csv.status == as_ndjson.status == as_page.status == 200
    assert [row[0] for row in csv.reader(io.StringIO(as_csv.text))][1:] == expected
    ids = [str(json.loads(line)["id"]) for line in as_ndjson.text.splitlines()]
    assert ids == expected
    assert re.findall(r"<tr[^>]*><td[^>]*>(\d+)</td>", as_page.text) == expected


def test_a_search_whose_matches_fit_the_first_page_has_no_keyset_page(process_server, demo_db):
    server = process_server(TABLESTREAM_DB=str(demo_db), TABLESTREAM_LOG_LEVEL="warning")
    assert keyset_urls(server.url + "/tables/orders", "_search=zebra") is None


def _passing() -> BigFacets:
    return BigFacets(
        rows=10_000_000,
        facet_seconds=[0.21, 0.22, 0.24],
        facets_timed_out=3,
        during_stream=True,
        stream_status=200,
        stream_complete=True,
        stream_seconds=40.0,
        window_rate=8e6,
        window_gap=0.02,
        stream_rate=15e6,
    )


def test_the_10m_facet_verdict_passes_only_when_every_facet_and_the_stream_met_it():
    assert big_facets_verdict(_passing())[0]
    slow = replace(_passing(), facet_seconds=[0.21, 0.251, 0.22])
    counted = replace(_passing(), facets_timed_out=2)
    after_the_stream = replace(_passing(), during_stream=False)
    cut = replace(_passing(), stream_complete=False)
    refused = replace(_passing(), stream_status=503)
    broken = replace(_passing(), stream_error="ConnectionResetError: reset by peer")
    none_asked = replace(_passing(), facet_seconds=[], facets_timed_out=0)
    for missed in (slow, counted, after_the_stream, cut, refused, broken, none_asked):
        passed, line = big_facets_verdict(missed)
        assert not passed, line
    line = big_facets_verdict(broken)[1]
    assert "the stream failed: ConnectionResetError" in line
