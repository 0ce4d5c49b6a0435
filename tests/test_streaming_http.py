"""Tables streamed through a real waitress on 127.0.0.1, read back chunk by chunk."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from tablestream import create_app
from tablestream.sources.base import RowStream, Table
from tablestream.sources.synthetic import synthetic_row
from tablestream.testing import httpraw

from .conftest import DEMO_ORDERS, NASTY
from .tablehtml import parse_table


@pytest.fixture
def served(process_server, settings_for):
    return process_server(**{f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()})


def test_synthetic_table_streams_exactly_the_rows_asked_for(served):
    response = httpraw.get(f"{served.url}/tables/synthetic?limit=5000&offset=123")
    assert response.status == 200 and response.terminated
    table = parse_table(response.text)
    assert table.columns == ["id", "name", "email", "amount", "created", "status"]
    assert len(table.rows) == 5000
    assert table.rows[0] == list(synthetic_row(123))
    assert table.rows[-1] == list(synthetic_row(123 + 4999))
    assert table.rows_sent == 5000


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_sqlite_table_streams_every_row_with_the_database_values(served, demo_db):
    response = httpraw.get(f"{served.url}/tables/orders")
    table = parse_table(response.text)
    assert response.terminated and table.rows_sent == DEMO_ORDERS == len(table.rows)
    with sqlite3.connect(demo_db) as conn:
        expected = conn.execute(
            "SELECT * FROM orders WHERE id IN (1, 20000) ORDER BY id"
        ).fetchall()
    for got, want in zip((table.rows[0], table.rows[-1]), expected, strict=True):
        text = ["" if v is None else str(v) for v in want]
        text[4] = f"{want[4]:,.2f}"  # templates/tables/demo/orders.html shows total |money
        assert got == text


def test_csv_table_streams_its_rows_with_every_cell_escaped(served):
    response = httpraw.get(f"{served.url}/tables/nasty")
    table = parse_table(response.text)
    assert table.columns == ["n", "payload"]
    assert [row[1] for row in table.rows] == NASTY
    assert table.rows_sent == len(NASTY)
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "&#34;hi&#34; &amp; &#39;bye&#39;" in response.text
    assert "&amp;amp; already escaped?" in response.text


def test_response_is_chunked_html_in_chunks_of_at_least_the_configured_size(
    process_server, settings_for
):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for(chunk_bytes=16384).items()}
    server = process_server(**env)
    response = httpraw.get(f"{server.url}/tables/synthetic?limit=20000")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "content-length" not in response.headers
    sizes = [len(c) for c in response.chunks]
    assert len(sizes) > 10
    head, middle = sizes[0], sizes[1:-1]
    assert head < 16384 and b"<thead>" in response.chunks[0]
    assert all(size >= 16384 for size in middle), sizes
    assert max(middle) < 16384 + 512


class _SlowStream(RowStream):
    def __init__(self, release: threading.Event) -> None:
        self.columns = ["n"]
        self.rows_read = 0
        self.closed = False
        self._release = release

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        self._release.wait(10)
        for i in range(3):
            self.rows_read += 1
            yield (str(i),)

    def close(self) -> None:
        self.closed = True


class _SlowTable(Table):
    kind = "test"
    name = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.opened: list[_SlowStream] = []

    def columns(self) -> list[str]:
        return ["n"]

    def open(self, limit=None, offset=0) -> RowStream:
        stream = _SlowStream(self.release)
        self.opened.append(stream)
        return stream


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_page_head_reaches_the_client_before_a_slow_source_produces_rows(
    thread_server, settings_for
):
    app = create_app(settings_for())
    slow = _SlowTable()
    app.extensions["tablestream"].catalog["slow"] = slow
    server = thread_server(app)
    release_after = 1.0
    released_at: list[float] = []

    def release() -> None:
        released_at.append(time.monotonic())
        slow.release.set()

    timer = threading.Timer(release_after, release)
    timer.start()
    try:
        response = httpraw.get(f"{server.url}/tables/slow")
    finally:
        timer.cancel()
    assert b"<thead>" in response.chunks[0]
    assert response.arrivals[0] < release_after * 0.8, response.arrivals
    # The rows came after the source let them go (both on one clock: the timer starts just
    # before the request is sent, so the arrivals alone could read a hair under 1.0 s).
    assert response.started + response.arrivals[-1] >= released_at[0]
    assert parse_table(response.text).rows_sent == 3
    deadline = time.monotonic() + 5
    while not slow.opened[0].closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow.opened[0].closed


def test_client_disconnect_closes_the_source(thread_server, settings_for):
    app = create_app(settings_for())
    closed = threading.Event()
    table = app.extensions["tablestream"].catalog["synthetic"]
    original_open = table.open

    def open_and_watch(limit=None, offset=0):
        stream = original_open(limit, offset)
        original_close = stream.close

        def close():
            original_close()
            closed.set()

        stream.close = close
        return stream

    table.open = open_and_watch
    server = thread_server(app)
    response = httpraw.get(f"{server.url}/tables/synthetic?limit=2000000", max_bytes=200_000)
    assert not response.terminated
    assert closed.wait(10), "the row source was not closed after the client went away"
