"""/streams/<request id> tells a page what became of its stream, from a bounded memory."""

from __future__ import annotations

import json

from tablestream import create_app
from tablestream.observe.status import IN_PROGRESS, RecentStreams
from tablestream.testing import httpraw

from .faulty import FailingTable


def _status(url: str) -> tuple[int, dict]:
    response = httpraw.get(url)
    return response.status, json.loads(response.body)


def test_the_page_links_to_its_stream_status_which_reports_the_outcome(thread_server, settings_for):
    # From the trusted proxy's address, so the test's X-Request-IDs are kept.
    app = create_app(settings_for(trusted_proxy="127.0.0.1"))
    app.extensions["tablestream"].catalog["failing"] = FailingTable(fail_after=5_000)
    server = thread_server(app)
    page = httpraw.get(f"{server.url}/tables/synthetic?limit=10", headers={"X-Request-ID": "ok-1"})
    assert b'data-status-url="/streams/ok-1"' in page.body
    assert _status(f"{server.url}/streams/ok-1") == (
        200,
        {"request_id": "ok-1", "table": "synthetic", "outcome": "completed", "rows_sent": 10},
    )
    cut = httpraw.get(f"{server.url}/tables/failing", headers={"X-Request-ID": "cut-1"})
    assert not cut.terminated
    assert _status(f"{server.url}/streams/cut-1") == (
        200,
        {"request_id": "cut-1", "table": "failing", "outcome": "error", "rows_sent": 5_000},
    )
    code, body = _status(f"{server.url}/streams/never-seen")
    assert code == 404 and "no such recent stream" in body["error"]


def test_recent_streams_keep_only_the_newest_and_start_in_progress():
    recent = RecentStreams(capacity=3)
    observers = [recent.observer("t", f"id{i}") for i in range(5)]
    assert recent.get("id0") is None and recent.get("id1") is None
    assert recent.get("id4") == {"table": "t", "outcome": IN_PROGRESS, "rows_sent": 0}
    observers[4].finished("client_aborted", 12)
    observers[0].finished("completed", 1)  # evicted: nothing to update, nothing raised
    assert recent.get("id4") == {"table": "t", "outcome": "client_aborted", "rows_sent": 12}
