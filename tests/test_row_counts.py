"""Row counts on ``/`` and ``/tables/<name>.json``: bounded in time, shared between requests."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tablestream import create_app
from tablestream.sources.counts import RowCounts
from tablestream.sources.synthetic import SyntheticTable
from tablestream.testing import httpraw


@pytest.fixture
def slow_view_db(tmp_path: Path) -> Path:
    """A small table and a view over it whose count(*) would take minutes (2,000³ rows)."""
    path = tmp_path / "slow.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])
        conn.execute("CREATE VIEW cubed AS SELECT a.id FROM t a, t b, t c")
    conn.close()
    return path


def test_an_index_over_a_view_too_slow_to_count_answers_at_once_and_healthz_stays_up(
    thread_server, slow_view_db
):
    server = thread_server(create_app({"db": str(slow_view_db), "synthetic_rows": "0"}))
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:  # six readers reloading the index together
        pages = [pool.submit(httpraw.get, f"{server.url}/", timeout=30) for _ in range(6)]
        health = httpraw.get(f"{server.url}/healthz", timeout=30)
        health_seconds = time.monotonic() - started
        pages = [page.result() for page in pages]
    assert health.status == 200 and health_seconds < 5
    assert time.monotonic() - started < 10  # each count gives up after COUNT_SECONDS

    def shown(page: httpraw.RawResponse, table: str) -> str:
        cell = page.text.split(f">{table}</a>")[1].split("</tr>")[0]
        return "2,000" if "2,000" in cell else "—" if "—" in cell else cell

    for page in pages:
        assert page.status == 200
        assert shown(page, "cubed") == "—"  # unknown, not a number and not a wait of minutes
        assert shown(page, "t") in ("2,000", "—")  # "—" while another request counts it
    again = httpraw.get(f"{server.url}/", timeout=30)
    assert shown(again, "t") == "2,000" and shown(again, "cubed") == "—"
    described = httpraw.get(f"{server.url}/tables/cubed.json", timeout=30)
    assert described.status == 200 and '"row_count": null' in described.text


class _Counted(SyntheticTable):
    """A synthetic table that counts how often it was counted, and may hold a count open."""

    def __init__(self) -> None:
        super().__init__(5)
        self.calls = 0
        self.hold = threading.Event()
        self.hold.set()

    def row_count(self) -> int:
        self.calls += 1
        self.hold.wait(10)
        return super().row_count()


def test_a_count_is_reused_until_it_is_older_than_the_cache_time():
    now = [100.0]
    counts, table = RowCounts(ttl=10, clock=lambda: now[0]), _Counted()
    assert counts.of(table) == 5 and counts.of(table) == 5 and table.calls == 1
    now[0] += 9.9
    assert counts.of(table) == 5 and table.calls == 1
    now[0] += 0.2
    assert counts.of(table) == 5 and table.calls == 2


def test_a_request_does_not_wait_for_a_count_another_request_has_under_way():
    counts, table = RowCounts(ttl=0), _Counted()
    assert counts.of(table) == 5  # known from now on
    table.hold.clear()
    first = threading.Thread(target=counts.of, args=(table,))
    first.start()
    while table.calls < 2:
        time.sleep(0.01)
    started = time.monotonic()
    assert counts.of(table) == 5  # the last count known, at once
    assert time.monotonic() - started < 1 and table.calls == 2
    table.hold.set()
    first.join()
    fresh, other = RowCounts(), _Counted()
    other.hold.clear()
    counting = threading.Thread(target=fresh.of, args=(other,))
    counting.start()
    while other.calls < 1:
        time.sleep(0.01)
    assert fresh.of(other) is None  # nothing known yet: unknown, not a wait
    other.hold.set()
    counting.join()
    assert fresh.of(other) == 5
