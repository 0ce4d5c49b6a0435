"""Rows by range (?fragment=rows) and the page kept near its reader (pacing, packed rows).

The page's script releases rows far from view and fetches them back with the page's URL plus
``fragment=rows&offset=N&limit=K``; these tests prove, against real waitress servers, that the
fragment is byte for byte the rows the page streamed (default markup and a table's own row
template), that it answers to the same grant and hidden columns, that bad parameters are 400s
that say what is allowed, and that the stream waits for a page that reports how far it has
parsed, sends the rows past the window as counts only to such a page, and runs free without reports.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.stream.fragments import MAX_ROWS
from tablestream.stream.pacing import Pacers
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .tablehtml import parse_table


def _rows_of(page: bytes) -> bytes:
    """The page's row markup as one run: its rows without the batches' <tbody> boundaries and
    the resume point after each batch (<!--ts-after URL-->)."""
    start = page.index(b"<tbody>", page.index(b"</thead>")) + len(b"<tbody>")
    end = page.index(b"</tbody>\n</table>")
    rows = re.sub(rb"<!--ts-after [^>]*-->", b"", page[start:end])
    return rows.replace(b"</tbody><tbody>\n", b"")


@pytest.mark.parametrize(
    "path",
    [
        "/tables/synthetic?limit=3000",  # the default row markup
        "/tables/orders?limit=3000",  # the demo's own row template (links, badges, money)
        "/tables/orders?limit=3000&status=paid&_sort_desc=total",  # a query, pushed down
        "/tables/orders?limit=3000&_cols=id,status",  # chosen columns: the default markup
    ],
)
def test_a_fragment_is_byte_for_byte_the_rows_the_page_streamed_there(
    path, thread_server, settings_for
):
    server = thread_server(create_app(settings_for(gzip="false")))
    page = httpraw.get(server.url + path)
    assert page.status == 200 and page.terminated
    rows = _rows_of(page.body)
    url = re.search(rb'data-rows-url="([^"]+)"', page.body).group(1).decode()
    url = url.replace("&amp;", "&")
    for offset, limit in ((0, 1), (0, MAX_ROWS), (1234, 700), (2999, 1)):
        fragment = httpraw.get(f"{server.url}{url}&offset={offset}&limit={limit}")
        assert fragment.status == 200, fragment.body[:300]
        assert fragment.headers["x-tablestream-rows"] == str(limit)
        assert fragment.body.count(b"</tr>") == limit
        at = rows.index(fragment.body)
        assert rows[:at].count(b"</tr>") == offset  # the very rows, at their place


def test_a_fragment_past_the_end_is_short_and_says_so(client):
    response = client.get("/tables/synthetic?fragment=rows&offset=1999998&limit=10")
    assert response.status_code == 200
    assert response.headers["X-Tablestream-Rows"] == "2"
    assert response.get_data().count(b"<tr>") == 2


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("fragment=rows", "fragment=rows needs limit from 1 to 1000, not None"),
        ("fragment=rows&limit=0", "needs limit from 1 to 1000, not 0"),
        ("fragment=rows&limit=1001", "needs limit from 1 to 1000, not 1001"),
        ("fragment=all&limit=5", "fragment='all' is not a fragment of a page"),
        ("fragment=rows&fragment=rows&limit=5", "fragment is given 2 times"),
        ("fragment=rows&limit=5&format=csv", "fragment=rows is HTML, not csv"),
        ("fragment=rows&limit=5&offset=-1", "offset='-1' is not a whole number"),
    ],
)
def test_a_bad_fragment_request_is_a_400_that_says_what_is_allowed(client, query, says):
    response = client.get(f"/tables/synthetic?{query}")
    assert response.status_code == 400
    text = response.get_data(as_text=True).replace("&#39;", "'")
    assert says in text, text
    if "fragment" in says:
        assert "expected fragment=rows with limit from 1 to 1000" in text


def test_a_fragment_answers_to_the_same_grant_and_hides_the_same_columns(
    tmp_path: Path, thread_server, settings_for
):
    tokens = tmp_path / "tokens.toml"
    orders = add_token(str(tokens), "orders-reader", tables=["orders"])
    analyst = add_token(str(tokens), "analyst", tables=["*"], hide=["customers.email"])
    app = create_app(settings_for(tokens_file=str(tokens), auth_failures_per_minute="0"))
    server = thread_server(app)

    def get(path: str, token: str | None) -> httpraw.RawResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpraw.get(server.url + path, headers=headers)

    fragment = "/tables/customers?fragment=rows&offset=10&limit=5"
    assert get(fragment, None).status == 401
    assert get(fragment, orders).status == 404  # as for a table that does not exist
    shown = get(fragment, analyst)
    assert shown.status == 200 and shown.body.count(b"<tr>") == 5
    assert shown.body.count(b"<td>") == 5 * 4  # id, name, city, signed_up: no email
    assert b"@" not in shown.body


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_offers_ranges_only_where_a_fragment_gives_back_its_rows(client):
    page = client.get("/tables/synthetic?limit=10&_sort=name").get_data(as_text=True)
    assert 'data-rows-url="/tables/synthetic?_sort=name&amp;fragment=rows"' in page
    assert 'data-page-rows="50000"' in page and 'data-offset="0"' in page
    assert "data-rows-url" in client.get("/tables/orders?limit=10").get_data(as_text=True)


def test_without_page_rows_the_page_keeps_every_row_and_offers_no_ranges(
    thread_server, settings_for
):
    server = thread_server(create_app(settings_for(page_rows="0")))
    assert b"data-rows-url" not in httpraw.get(server.url + "/tables/synthetic?limit=10").body


def _open_page(url: str) -> tuple[object, bytes, str]:
    """A page's response, its first bytes, and its status URL."""
    import urllib.request

    response = urllib.request.urlopen(url, timeout=30)
    head = response.read(6000)
    return response, head, re.search(r'data-status-url="([^"]+)"', head.decode()).group(1)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_that_reports_is_kept_near_its_parser_and_gets_the_rows_past_its_window_as_counts(
    thread_server, settings_for
):
    # Until the page's first report the stream runs free (a program reading the page is never
    # held): the window is wider than what the kernel and waitress buffer (~4 MB, ~30k rows)
    # before the test, which does not read yet, gets its first report in.
    keep = 100_000
    app = create_app(settings_for(gzip="false", page_rows=str(keep), synthetic_rows="2000000"))
    server = thread_server(app)
    response, head, status_url = _open_page(f"{server.url}/tables/synthetic")
    received: list[bytes] = [head]

    def read() -> None:  # as a browser does: everything, as fast as it comes
        while piece := response.read1(65536):
            received.append(piece)

    parsed = [0]  # what the page says its parser has reached
    reported = threading.Event()
    done = threading.Event()

    def report() -> None:
        while not done.is_set():
            httpraw.get(f"{server.url}{status_url}?parsed={parsed[0]}")
            reported.set()
            time.sleep(0.2)

    def rows_received() -> int:
        return b"".join(received).count(b"<tr><td>")

    reader = threading.Thread(target=read)
    reporter = threading.Thread(target=report)
    reporter.start()
    try:
        assert reported.wait(10)
        metric = "tablestream_stream_rows_total"
        early = value(f"{server.url}/metrics", metric, table="synthetic") or 0
        assert early < keep - 10_000, f"{early} rows went out before the first report"
        reader.start()
        held, deadline = -1, time.monotonic() + 20
        while time.monotonic() < deadline and held != (now := rows_received()):
            held = now
            time.sleep(1)
        body = b"".join(received)
        # A parser stuck at row 0: the stream is held the budget ahead, less up to a batch and a
        # chunk (32 KiB, ~240 rows) that wait with it.
        assert keep - 256 - 300 <= held <= keep, held
        assert b"<!--ts-rows" not in body
        parsed[0] = keep  # the parser catches up: the rest may come
        reader.join(60)
        assert not reader.is_alive()
    finally:
        done.set()
        reporter.join()
    body = b"".join(received)
    rows = body.count(b"<tr><td>")
    counts = [int(n) for n in re.findall(rb"<!--ts-rows ([0-9]+) *-->", body)]
    # Up to the first batch past the window the rows came as rows; after it, as counts, a
    # batch each, and every row the source read is counted once, as the footer says.
    assert keep <= rows < keep + 1024, rows  # to the end of the batch with row 100,000
    assert b"<tr><td>%d</td>" % rows in body and b"<tr><td>%d</td>" % (rows + 1) not in body
    assert counts and rows + sum(counts) == 2_000_000
    assert b'data-rows-sent="2000000"' in body[-2000:]
    assert len(body) < rows * 200 + 3_000_000  # 2M rows as elements would be ~260 MB


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_that_never_reports_streams_every_row_as_before_unpaced(thread_server, settings_for):
    server = thread_server(create_app(settings_for(gzip="false", page_rows="5000")))
    page = httpraw.get(f"{server.url}/tables/synthetic?limit=200000", timeout=60)
    assert page.terminated and b"<!--ts-rows" not in page.body
    assert parse_table(page.text).rows_sent == 200000


def test_only_the_streams_own_caller_may_report_for_it():
    pacers = Pacers()

    class Rows:
        columns = ("a",)
        rows_read = 0

        def batches(self):
            return iter(())

        def close(self) -> None:
            pass

    paced = pacers.pace(Rows(), "request-1", "alice", budget=10)  # type: ignore[arg-type]
    assert not pacers.heard("request-1", "mallory", 5)
    assert not pacers.heard("request-2", "alice", 5)
    assert pacers.heard("request-1", "alice", 5)
    paced.close()
    assert len(pacers) == 0 and not pacers.heard("request-1", "alice", 6)


def test_a_page_that_reports_but_whose_parser_never_moves_does_not_hold_its_stream_for_ever():
    """A client reporting parsed=0 without reading would keep its stream slot waiting; after
    ``stuck`` seconds of a parser that stays put the stream goes on (the watchdog then judges the
    client by what it reads)."""
    pacers = Pacers(stuck=0.5)

    class Rows:
        columns = ("a",)
        rows_read = 0

        def batches(self):
            for _ in range(4):
                self.rows_read += 100
                yield [("x",)] * 100

        def close(self) -> None:
            pass

    paced = pacers.pace(Rows(), "request-1", None, budget=150)  # type: ignore[arg-type]
    done = threading.Event()

    def report() -> None:  # reports keep coming, every 0.1 s, all saying row 0
        while not done.is_set():
            pacers.heard("request-1", None, 0)
            time.sleep(0.1)

    reporter = threading.Thread(target=report)
    reporter.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        got = [len(batch) for batch in paced.batches()]
        waited = time.monotonic() - started
    finally:
        done.set()
        reporter.join()
        paced.close()
    assert got == [100, 100, 100, 100]
    assert waited >= 0.4, waited  # it was held first: the budget was passed at the 2nd batch
