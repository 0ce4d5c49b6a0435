"""CSV, NDJSON and gzip come from the same stream as the page, on a real waitress."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib

import pytest

from tablestream import create_app
from tablestream.sources.synthetic import COLUMNS, KINDS, synthetic_row
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .conftest import NASTY, ndjson_values
from .faulty import FailingTable
from .tablehtml import parse_table


@pytest.fixture
def served(thread_server, settings_for):
    # As behind nginx (the trusted proxy's address), so a test's X-Request-ID is kept.
    app = create_app(settings_for(trusted_proxy="127.0.0.1"))
    app.extensions["tablestream"].catalog["failing"] = FailingTable(fail_after=20_000)
    return thread_server(app)


def test_csv_has_the_rows_of_the_page_quoted_by_rfc_4180(served):
    response = httpraw.get(f"{served.url}/tables/nasty.csv")
    assert response.status == 200 and response.terminated
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["vary"] == "Accept-Encoding, Accept"  # gzip and format negotiation
    assert b"\r\n" in response.body
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == ["n", "payload"]
    assert [row[1] for row in rows[1:]] == NASTY
    page = parse_table(httpraw.get(f"{served.url}/tables/nasty").text)
    assert [list(row) for row in page.rows] == rows[1:]


def _typed_synthetic(i: int) -> dict:
    """The synthetic row as typed NDJSON has it: id and amount numbers, created ISO with a T."""
    return dict(zip(COLUMNS, ndjson_values(synthetic_row(i), KINDS), strict=True))


def test_ndjson_is_one_json_object_per_row_keyed_by_column(served):
    response = httpraw.get(f"{served.url}/tables/synthetic.ndjson?limit=3000&offset=7")
    assert response.status == 200 and response.terminated
    assert response.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    lines = response.text.splitlines()
    assert len(lines) == 3000
    assert json.loads(lines[0]) == _typed_synthetic(7)
    assert json.loads(lines[-1]) == _typed_synthetic(3006)
    nasty = [
        json.loads(line)["payload"]
        for line in httpraw.get(f"{served.url}/tables/nasty.ndjson").text.splitlines()
    ]
    assert nasty == NASTY


def test_format_query_argument_selects_the_same_formats(served):
    by_suffix = httpraw.get(f"{served.url}/tables/synthetic.csv?limit=50").body
    assert httpraw.get(f"{served.url}/tables/synthetic?format=csv&limit=50").body == by_suffix
    html = httpraw.get(f"{served.url}/tables/synthetic?format=html&limit=50")
    assert parse_table(html.text).rows_sent == 50


@pytest.mark.parametrize(
    "path,message",
    [
        ("/tables/synthetic?format=xml", "expected one of html, csv, ndjson"),
        ("/tables/synthetic.csv?format=ndjson", "the path asks for csv but format=ndjson"),
        ("/tables/synthetic?format=csv&format=csv", "give it once"),
    ],
)
def test_an_unknown_or_contradictory_format_is_a_400_that_says_what_is_allowed(
    served, path, message
):
    response = httpraw.get(served.url + path)
    assert response.status == 400
    assert message in response.text


def test_gzip_stream_inflates_chunk_by_chunk_to_the_plain_page(served):
    url = f"{served.url}/tables/synthetic?limit=20000"
    same_id = {"X-Request-ID": "same"}  # the page links to its own stream's status
    plain = httpraw.get(url, headers=same_id).body
    response = httpraw.get(url, headers={"Accept-Encoding": "gzip", **same_id})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding, Accept"  # gzip and format negotiation
    assert response.terminated and len(response.chunks) > 10
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    first = inflate.decompress(response.chunks[0])
    assert b"<thead>" in first, "the head must be readable from the first chunk alone"
    rest = b"".join(inflate.decompress(chunk) for chunk in response.chunks[1:])
    assert inflate.eof and first + rest == plain
    assert gzip.decompress(response.body) == plain
    assert len(response.body) < len(plain) / 4


@pytest.mark.parametrize("accept", ["gzip;q=0", "identity", "br", ""])
def test_no_gzip_unless_the_client_accepts_it(served, accept):
    response = httpraw.get(
        f"{served.url}/tables/synthetic?limit=100", headers={"Accept-Encoding": accept}
    )
    assert "content-encoding" not in response.headers
    assert parse_table(response.text).rows_sent == 100


def test_gzip_can_be_turned_off(thread_server, settings_for):
    server = thread_server(create_app(settings_for(gzip="false")))
    response = httpraw.get(
        f"{server.url}/tables/synthetic?limit=100", headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in response.headers
    assert parse_table(response.text).rows_sent == 100


def test_metrics_count_sent_and_uncompressed_bytes(served):
    url = f"{served.url}/tables/synthetic?limit=5000"
    plain_size = httpraw.get(url).size
    response = httpraw.get(url, headers={"Accept-Encoding": "gzip"})
    metrics = f"{served.url}/metrics"
    sent = value(metrics, "tablestream_stream_bytes_total", table="synthetic")
    uncompressed = value(metrics, "tablestream_stream_uncompressed_bytes_total", table="synthetic")
    assert sent == plain_size + response.size
    assert uncompressed == 2 * plain_size


@pytest.mark.parametrize(
    "suffix,marker",
    [
        ("", b"tablestream:error after 20000 rows"),
        (".csv", b"# tablestream:error after 20000 rows"),
        (".ndjson", b'"rows_sent": 20000'),
    ],
)
def test_a_cut_stream_is_visibly_incomplete_in_every_format(served, suffix, marker):
    response = httpraw.get(f"{served.url}/tables/failing{suffix}")
    assert response.status == 200 and not response.terminated
    assert marker in response.tail
    zipped = httpraw.get(
        f"{served.url}/tables/failing{suffix}", headers={"Accept-Encoding": "gzip"}
    )
    assert not zipped.terminated
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = inflate.decompress(zipped.body)
    assert marker in text
    assert not inflate.eof, "a cut gzip stream must lack its trailer"
