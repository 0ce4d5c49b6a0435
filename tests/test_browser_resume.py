"""Issue 31 item 4: a page cut by a real drain resumes itself, in Debian's Chromium.

Two ``tablestream serve`` instances of one deployment (one ``TABLESTREAM_SECRET_FILE``, so the
second accepts the first's ``_after`` tokens, and a 1 s shutdown grace) behind a real nginx: the
first serves, the second is its backup, and nginx goes to it once the first refuses connections
(``proxy_next_upstream error timeout http_503``), as a balancer does during a rolling deploy.
The first instance's stream must still be running when it gets SIGTERM (it then cuts the stream
after whole rows and exits): a page past its window is held near its parser by its own reports
(``stream/pacing.py``); a page that keeps every row is held by nginx's ``limit_rate`` (buffered
in memory only, so TCP pushes back). The page's script then
fetches the continuation through nginx, from the second instance, and must end with every row
exactly once (checked by id) and the success footer.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import time
from pathlib import Path

import pytest

from tablestream import create_app
from tablestream.config.secretfile import write_secret
from tablestream.sources.synthetic import synthetic_row
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .nginx import Nginx
from .test_browser import (  # noqa: F401 - browser and page: fixtures, passed by name
    STATUS,
    _screenshot,
    _status,
    _wait_for_state,
    _wait_until,
    browser,
    page,
)

pytestmark = [pytest.mark.browser]


def _pair_site(rate: str):
    """The shipped site file sending to the pair, retrying the backup when the first refuses;
    with ``rate``, nginx sends at most that many bytes a second to the reader and reads the
    service only as fast (buffered in memory, never in temp files), so TCP holds the stream."""

    def edit(site: str) -> str:
        site = site.replace("proxy_pass http://tablestream;", "proxy_pass http://resume_pair;", 1)
        retry = "proxy_next_upstream error timeout http_503;"
        if rate:
            slow = "proxy_buffering on;\n        proxy_ignore_headers X-Accel-Buffering;\n"
            slow += f"        proxy_buffers 8 8k;\n        limit_rate {rate};\n        {retry}"
            return site.replace("proxy_buffering off;", slow, 1)
        return site.replace("proxy_buffering off;", f"proxy_buffering off;\n        {retry}", 1)

    return edit


@pytest.fixture
def drained(process_server, tmp_path: Path):
    """Start two instances and nginx; give back (nginx, first, second)."""
    secret = tmp_path / "secret"
    write_secret(str(secret))

    def start(rows: int, page_rows: int, rate: str = "", grace: str = "1"):
        env = {
            "TABLESTREAM_DB": "",
            "TABLESTREAM_SECRET_FILE": str(secret),
            "TABLESTREAM_SYNTHETIC_ROWS": str(rows),
            "TABLESTREAM_SHUTDOWN_GRACE": grace,
            "TABLESTREAM_OUTBUF_HIGH_WATERMARK": "65536",  # held back by nginx's rate
            "TABLESTREAM_OUTBUF_OVERFLOW": "65536",
            "TABLESTREAM_PAGE_ROWS": str(page_rows),
            "TABLESTREAM_GZIP": "false" if rate else "true",  # rows, not gzip, pass the rate
            "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
        }
        first, second = process_server(**env), process_server(**env)
        ports = [s.url.rsplit(":", 1)[1] for s in (first, second)]
        upstream = (
            "upstream resume_pair {\n"
            f"    server 127.0.0.1:{ports[0]} max_fails=1 fail_timeout=30s;\n"
            f"    server 127.0.0.1:{ports[1]} backup;\n"
            "}\n"
        )
        nginx = Nginx(
            tmp_path / "nginx",
            int(ports[0]),
            edit=lambda site: upstream + _pair_site(rate)(site),
        )
        started.append(nginx)
        return nginx, first, second

    started: list[Nginx] = []
    yield start
    for nginx in started:
        nginx.stop()


IDS_IN_DOCUMENT = (
    "[...document.querySelectorAll('#ts-table tbody tr')].map(r => Number(r.cells[0].textContent))"
)


def _continuations(nginx: Nginx) -> list[int]:
    """The row each continuation asked through nginx started after: its ``_after`` token's
    payload (signed, not secret: base64url JSON of the key)."""
    found = []
    for token in re.findall(r"_after=([\w-]+\.[\w-]+\.[\w-]+)", nginx.access_log.read_text()):
        payload = token.split(".")[1]
        found.append(
            int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[0])
        )
    return found


def _drain_mid_stream(tab, first, url: str, shown: int = 300) -> None:
    """Open ``url`` and SIGTERM ``first`` once its stream runs and ``shown`` rows are in the
    page; it cuts the stream at the end of its grace and exits."""
    tab.goto(url, wait_until="commit")
    deadline = time.monotonic() + 20
    while value(f"{first.url}/metrics", "tablestream_streams_in_progress") != 1:
        assert time.monotonic() < deadline, "the stream never started on the first instance"
        time.sleep(0.05)
    _wait_until(tab, f"document.querySelectorAll('#ts-table tbody tr').length >= {shown}", 20)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=30) == 0
    shown = tab.evaluate("document.getElementById('ts-status').textContent")
    assert "complete" not in shown, f"the page was whole before the drain cut it: {shown}"


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_cut_by_a_drain_resumes_on_the_other_instance_with_every_row_once(
    page,  # noqa: F811 - the imported fixture's value
    drained,
):
    # Past its window of 20,000 rows the page gets counts, as a 10M-row page does, so the
    # first instance streams fast (~400,000 rows/s, more on a quiet machine: a fresh-clone run
    # finished a million rows before the drain): it is told to drain as soon as its stream
    # runs, and three million rows outlast the grace.
    rows, keep = 3_000_000, 20_000
    nginx, first, second = drained(rows, page_rows=keep, grace="0.2")
    _drain_mid_stream(page, first, f"{nginx.url}/tables/synthetic", shown=0)
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 60_000)
    state, text = _status(page)
    assert state == "complete"
    assert text == f"{rows:,} rows, complete (resumed once)", text
    assert page.locator("#ts-complete").get_attribute("data-rows-sent") == str(rows)
    assert page.locator(".ts-error").count() == 0
    # Every row once: the page resumed once, after the rows it had counted, and the second
    # instance sent exactly the rest.
    (after,) = _continuations(nginx)
    sent = value(f"{second.url}/metrics", "tablestream_stream_rows_total", table="synthetic")
    assert 0 < after < rows and sent == rows - after
    # The window still holds: the document keeps about the window, not the million rows; the
    # rows in it are each there once.
    in_document = page.evaluate(IDS_IN_DOCUMENT)
    assert len(in_document) <= keep + 256, len(in_document)
    assert in_document == list(range(in_document[0], in_document[0] + len(in_document)))
    # A row of the continuation, brought back by range, is the row the stream would give.
    page.fill("#ts-row", str(rows))
    page.press("#ts-row", "Enter")
    _wait_until(page, "document.querySelector('#ts-table tr.ts-target') !== null", 10)
    target = page.evaluate("document.querySelector('#ts-table tr.ts-target').cells[0].textContent")
    assert target == synthetic_row(rows - 1)[0]
    _screenshot(page, "resumed")
    # The continuation was asked of the second instance (the first is gone).
    assert value(f"{second.url}/metrics", "tablestream_streams_total", outcome="completed") >= 1
    # The only complaints: the cut body, and the live instance not knowing the cut stream when
    # the page asked (/streams/<request id>: 404), never the CSP or the script.
    expected = ("ERR_INCOMPLETE_CHUNKED_ENCODING", "status of 404 (NOT FOUND)")
    assert all(any(e in p for e in expected) for p in page.problems), page.problems


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_that_keeps_every_row_resumes_with_every_row_once_in_the_document(
    page,  # noqa: F811 - the imported fixture's value
    drained,
):
    # Without a window every row stays in the document: the ids there are the proof.
    rows = 60_000
    nginx, first, second = drained(rows, page_rows=0, rate="3m", grace="0.2")
    _drain_mid_stream(page, first, f"{nginx.url}/tables/synthetic")
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 60_000)
    assert re.fullmatch(r"60,000 rows, complete \(resumed (once|\d+ times)\)", _status(page)[1])
    ids = page.evaluate(IDS_IN_DOCUMENT)
    assert ids == list(range(1, rows + 1))
    assert page.locator("#ts-complete").get_attribute("data-rows-sent") == str(rows)
    assert page.locator(".ts-error").count() == 0
    assert value(f"{second.url}/metrics", "tablestream_streams_total", outcome="completed") >= 1


@pytest.fixture
def cut_page(page, thread_server, settings_for):  # noqa: F811 - the imported fixture's value
    """The synthetic page's real body cut inside its 11th batch of 256 rows, handed to the
    browser whole: a cut document parsed to its end, with no marker and no footer. Its last
    resume point is after the 9th batch (2,304 rows; one every 8 batches): the 10th batch and
    the start of the 11th must go. The continuation goes to the real server (behind
    ``page.route`` when a test says so)."""
    app = create_app(settings_for(synthetic_rows="3000", page_rows="0", gzip="false"))
    url = f"{thread_server(app).url}/tables/synthetic"
    whole = httpraw.get(url)
    points = [m.end() for m in re.finditer(rb"<!--ts-after [^>]*-->", whole.body)]
    batches = [m.start() for m in re.finditer(rb"</tbody><tbody>", whole.body)]
    assert len(points) == 2 and points[1] < batches[9], "a resume point every 8 batches"
    body = whole.body[: batches[9] + 300]  # 10 batches and a row and a half of the 11th
    headers = {k: v for k, v in whole.headers.items() if k != "transfer-encoding"}
    page.route(url, lambda route: route.fulfill(status=200, headers=headers, body=body))
    return url


def test_a_cut_document_parsed_to_its_end_resumes_after_its_last_resume_point(page, cut_page):  # noqa: F811
    page.goto(cut_page, wait_until="commit")
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    assert _status(page)[1] == "3,000 rows, complete (resumed once)"
    assert page.evaluate(IDS_IN_DOCUMENT) == list(range(1, 3001))
    assert page.locator("#ts-complete").get_attribute("data-rows-sent") == "3000"


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_continuation_refused_while_busy_is_asked_again_with_backoff(page, cut_page):  # noqa: F811
    refused = []

    def busy_twice(route):
        if len(refused) < 2:
            refused.append(time.monotonic())
            route.fulfill(status=503, headers={"Retry-After": "1"}, body="busy")
        else:
            route.continue_()

    page.route(re.compile(r".*/tables/synthetic\?_after=.*"), busy_twice)
    page.goto(cut_page, wait_until="commit")
    _wait_for_state(page, f"{STATUS}[data-state=complete]", 20_000)
    assert _status(page)[1] == "3,000 rows, complete (resumed once)"
    assert page.evaluate(IDS_IN_DOCUMENT) == list(range(1, 3001))
    assert len(refused) == 2 and refused[1] - refused[0] >= 0.4  # backoff between attempts


def test_a_continuation_the_server_refuses_ends_in_the_honest_error_state(page, cut_page):  # noqa: F811
    page.route(
        re.compile(r".*/tables/synthetic\?_after=.*"),
        lambda route: route.fulfill(status=400, body="This _after token was not made here."),
    )
    page.goto(cut_page, wait_until="commit")
    _wait_for_state(page, f"{STATUS}[data-state=error]", 20_000)
    assert _status(page)[1] == (
        "error: the stream was cut after 2,304 rows and could not be resumed (the server "
        "answered 400); the table is incomplete"
    )
    assert page.locator("#ts-complete").count() == 0
    assert page.evaluate(IDS_IN_DOCUMENT) == list(range(1, 2305))
