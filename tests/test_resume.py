"""Issue 31, item 3: a cut stream's marker says where it resumes, and resuming loses nothing.

Each cut here is a real drain: ``tablestream serve`` with a 1 s grace is sent SIGTERM while a
slow reader is mid-stream, so the server cuts the stream after whole rows and writes its marker.
The marker's URL is then followed on a *second* server that shares the deployment's secret
(``TABLESTREAM_SECRET_FILE``), as a balancer would send it to another instance: the two parts
together must be exactly the rows of an uninterrupted request, every row once, in every format.
Where the order cannot be reproduced (a table without a key, a caller who may not see the key),
the marker says there is no resume point.
"""

from __future__ import annotations

import html
import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.config.secretfile import write_secret
from tablestream.testing import ServerProcess, free_port, httpraw
from tablestream.testing.metricsread import value

from .faulty import FailingTable
from .pg import DSN
from .servers import wait_for
from .tablehtml import parse_table
from .test_cut_points import MARKERS
from .test_queries_pg import pg_orders  # noqa: F401 - a fixture: the demo orders in PostgreSQL

SUFFIXES = {"html": "", "csv": ".csv", "ndjson": ".ndjson"}


@pytest.fixture
def deployment(tmp_path: Path, demo_db: Path) -> dict[str, str]:
    """The settings two instances of one deployment share: data, secret, a short grace."""
    secret = tmp_path / "secret"
    write_secret(str(secret))
    return {
        "TABLESTREAM_DB": str(demo_db),
        "TABLESTREAM_SECRET_FILE": str(secret),
        "TABLESTREAM_SYNTHETIC_ROWS": "1000000",
        "TABLESTREAM_SHUTDOWN_GRACE": "1",
        "TABLESTREAM_OUTBUF_HIGH_WATERMARK": "65536",  # the slow reader holds the stream back
        "TABLESTREAM_OUTBUF_OVERFLOW": "65536",
        "TABLESTREAM_PAGE_ROWS": "0",  # every row of a page as a row, for parse_table
    }


def cut_by_drain(
    server: ServerProcess, path: str, headers: dict[str, str] | None = None, metrics: str = ""
) -> httpraw.RawResponse:
    """GET ``path`` as a slow reader and SIGTERM the server once the stream runs (``metrics``:
    the /metrics URL when it is not on the public port).

    The reader stops after the first chunk until the server has cut the stream (its log says
    the grace is over), then reads on slowly: whether the stream is cut no longer depends on
    how much the kernel's buffers absorb against the reading speed (a 550 KB CSV once
    finished within the grace when a flush sent several chunks per system call)."""
    got: dict[str, httpraw.RawResponse] = {}
    cut = threading.Event()

    def read() -> None:
        got["response"] = httpraw.get(server.url + path, headers=headers, read_pause=0.2, hold=cut)

    reader = threading.Thread(target=read)
    reader.start()
    metrics = metrics or f"{server.url}/metrics"
    deadline = time.monotonic() + 10
    while value(metrics, "tablestream_streams_in_progress") != 1:
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    try:
        wait_for(
            lambda: b"shutdown grace over" in server.log_path.read_bytes(),
            timeout=30,
            what="the drain's cut",
            step=0.05,
        )
    finally:
        cut.set()
    assert server.proc.wait(timeout=60) == 0
    reader.join(60)
    response = got["response"]
    assert response.status == 200 and not response.terminated, "the stream was not cut"
    return response


def resume_point(fmt: str, body: bytes) -> str | None:
    """The marker's resume URL (None: the marker says there is none)."""
    marker = MARKERS[fmt].search(body)
    assert marker is not None, body[-300:]
    text = marker.group().decode()
    if fmt == "csv":
        found = re.search(r"; resume: (\S+)\r\n$", text)
        assert found or text.endswith("; no resume point\r\n"), text
        return found.group(1) if found else None
    if fmt == "ndjson":
        return json.loads(text)["resume"]
    (url,) = re.findall(r'data-resume="([^"]*)"', text)
    assert url or "; there is no resume point; " in text, text
    return html.unescape(url) or None


def rows_of(fmt: str, body: bytes) -> list:
    """The body's rows before any marker: parsed cells for a page, raw lines otherwise."""
    marker = MARKERS[fmt].search(body)
    rows = body[: marker.start()] if marker else body
    if fmt == "html":
        return parse_table(rows.decode()).rows
    lines = rows.splitlines(keepends=True)
    return lines[1:] if fmt == "csv" else lines  # the header line is the format's, not a row


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(SUFFIXES))
@pytest.mark.parametrize(
    "query",
    [
        "?_sort=status&limit=18000",  # SQLite, a sort tie-broken by the key, limit reduced
        # filtered, columns chosen, a descending sort of numbers
        "?customer_id__lt=9000&_col=total&_col=id&_col=product&_col=note&_sort_desc=total",
    ],
)
def test_following_a_drains_resume_point_on_another_instance_gives_every_row_once(
    process_server, deployment, fmt, query
):
    path = f"/tables/orders{SUFFIXES[fmt]}{query}"
    first = process_server(**deployment)
    second = process_server(**deployment)
    cut = cut_by_drain(first, path)
    resume = resume_point(fmt, cut.body)
    assert resume is not None and "_after=" in resume and "offset=" not in resume
    sent = len(rows_of(fmt, cut.body))
    assert sent > 0 and f"after {sent} rows".encode() in cut.tail
    if "limit=" in query:
        assert f"limit={18000 - sent}" in resume
    rest = httpraw.get(second.url + resume)
    assert rest.status == 200 and rest.terminated
    whole = httpraw.get(second.url + path)
    assert whole.terminated
    expected = rows_of(fmt, whole.body)
    assert rows_of(fmt, cut.body) + rows_of(fmt, rest.body) == expected
    assert len(expected) > sent


@pytest.mark.slow
def test_a_cut_synthetic_stream_in_key_order_resumes_where_it_stopped(process_server, deployment):
    path = "/tables/synthetic.ndjson"
    first = process_server(**deployment)
    second = process_server(**deployment)
    cut = cut_by_drain(first, path)
    resume = resume_point("ndjson", cut.body)
    assert resume is not None
    ids = [json.loads(line)["id"] for line in rows_of("ndjson", cut.body)]
    rest = httpraw.get(second.url + resume.replace("?", "?limit=5&", 1))
    assert rest.terminated
    more = [json.loads(line)["id"] for line in rows_of("ndjson", rest.body)]
    assert ids == list(range(1, len(ids) + 1))
    assert more == list(range(len(ids) + 1, len(ids) + 6))


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_a_table_without_a_key_cut_by_its_source_has_no_resume_point(
    thread_server, settings_for, fmt
):
    app = create_app(settings_for())
    app.extensions["tablestream"].catalog["failing"] = FailingTable(fail_after=20_000)
    server = thread_server(app)
    response = httpraw.get(f"{server.url}/tables/failing{SUFFIXES[fmt]}")
    assert response.status == 200 and not response.terminated
    assert resume_point(fmt, response.body) is None


@pytest.mark.slow
def test_a_caller_who_may_not_see_the_key_gets_no_resume_point(
    process_server, deployment, tmp_path
):
    tokens = tmp_path / "tokens.toml"
    hider = add_token(str(tokens), "hider", tables=["*"], hide=["orders.id"])
    seer = add_token(str(tokens), "seer", tables=["*"])
    path = "/tables/orders.csv?_sort=status&limit=18000"
    resumes = {}
    for name, token in (("hider", hider), ("seer", seer)):
        port = free_port()
        settings = {
            **deployment,
            "TABLESTREAM_TOKENS_FILE": str(tokens),
            "TABLESTREAM_METRICS_PORT": str(port),
        }
        auth = {"Authorization": f"Bearer {token}"}
        metrics = f"http://127.0.0.1:{port}/metrics"
        cut = cut_by_drain(process_server(**settings), path, auth, metrics)
        resumes[name] = resume_point("csv", cut.body)
        header = cut.body.split(b"\r\n")[0].split(b",")
        assert (b"id" in header) is (name == "seer")
    assert resumes["hider"] is None and resumes["seer"] is not None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("fmt", "query"),
    [
        ("csv", "?_sort=status&limit=18000"),  # written by PostgreSQL itself (COPY)
        ("ndjson", "?_sort_desc=total&limit=18000"),
        ("html", "?customer_id__gt=10&limit=18000"),
    ],
)
def test_postgresql_streams_in_key_order_resume_and_heap_order_has_no_resume_point(
    process_server,
    deployment,
    pg_orders,  # noqa: F811 - pytest passes the imported fixture's value under its name
    fmt,
    query,
):
    settings = {
        **deployment,
        "TABLESTREAM_DB": "",
        "TABLESTREAM_PG_DSN": DSN,
        "TABLESTREAM_PG_TABLES": f"{pg_orders}.orders",
    }
    path = f"/tables/orders{SUFFIXES[fmt]}{query}"
    first, second = process_server(**settings), process_server(**settings)
    cut = cut_by_drain(first, path)
    resume = resume_point(fmt, cut.body)
    assert resume is not None
    rest = httpraw.get(second.url + resume)
    assert rest.terminated
    whole = httpraw.get(second.url + path)
    assert rows_of(fmt, cut.body) + rows_of(fmt, rest.body) == rows_of(fmt, whole.body)
    # The same table without a query or limit comes in heap order: nothing to resume from.
    heap = cut_by_drain(second, f"/tables/orders{SUFFIXES[fmt]}")
    assert resume_point(fmt, heap.body) is None
