"""Faults a streaming service meets, each ending cleanly, counted, and visible to the client."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tablestream import create_app
from tablestream.testing import free_port, httpraw, refuses_connections, wait_ready
from tablestream.testing.metricsread import value

from .faulty import FailingTable
from .tablehtml import parse_table


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_source_failing_mid_stream_gives_a_visibly_cut_page_counted_as_error(
    thread_server, settings_for, caplog
):
    app = create_app(settings_for())
    failing = FailingTable(fail_after=50_000)
    app.extensions["tablestream"].catalog["failing"] = failing
    server = thread_server(app)
    with caplog.at_level(logging.INFO):
        response = httpraw.get(f"{server.url}/tables/failing")
    assert response.status == 200
    assert not response.terminated, "a cut stream must not end with the terminating chunk"
    table = parse_table(response.text)
    assert table.error_marker and table.rows_sent is None
    # Every row the source gave arrives whole before the marker, and the marker says how many.
    assert len(table.rows) == 50_000 and table.rows[-1] == ["49999"]
    assert b"tablestream:error after 50000 rows" in response.tail
    assert failing.opened[0].closed
    metrics = f"{server.url}/metrics"
    assert _wait(lambda: value(metrics, "tablestream_streams_total", outcome="error") == 1)
    request_id = response.headers["x-request-id"]
    errors = [r for r in caplog.records if r.name == "tablestream.stream.body"]
    assert errors and request_id in errors[0].getMessage()


def test_a_source_failing_before_the_first_byte_is_a_503_page_without_traceback(client, app):
    class Broken(FailingTable):
        def open(self, limit=None, offset=0):
            from tablestream.sources import SourceError

            raise SourceError("cannot connect")

    app.extensions["tablestream"].catalog["broken"] = Broken(0)
    response = client.get("/tables/broken")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "cannot be read right now" in body and "Traceback" not in body


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(thread_server, settings_for):
    app = create_app(settings_for(write_timeout="1", outbuf_high_watermark="65536",
                                  outbuf_overflow="65536"))  # fmt: skip
    closed = threading.Event()
    table = app.extensions["tablestream"].catalog["synthetic"]
    original = table.open

    def watched(limit=None, offset=0):
        stream = original(limit, offset)
        close = stream.close
        stream.close = lambda: (close(), closed.set())
        return stream

    table.open = watched
    server = thread_server(app, threads=1)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /tables/synthetic HTTP/1.1\r\nHost: t\r\n\r\n")
        stalled.recv(1024)  # the head arrived; now read nothing more, keep the socket open
        assert closed.wait(15), "the stalled stream still holds its worker"
        # the only worker thread is free again
        assert httpraw.get(f"{server.url}/healthz", timeout=10).status == 200
    metrics = f"{server.url}/metrics"
    assert _wait(lambda: value(metrics, "tablestream_streams_total", outcome="client_aborted") == 1)


@pytest.mark.slow
def test_sigterm_refuses_new_connections_lets_short_streams_finish_and_marks_cut_ones(
    process_server, settings_for
):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    env["TABLESTREAM_SHUTDOWN_GRACE"] = "3"
    # Longer than the grace on any machine: 2M rows once were, until a fast one sent them in 2.9 s.
    env["TABLESTREAM_SYNTHETIC_ROWS"] = "100000000"
    server = process_server(**env)
    results: dict[str, httpraw.RawResponse] = {}

    def fetch(name: str, url: str) -> None:
        results[name] = httpraw.get(url, keep=False, timeout=60)

    short = threading.Thread(target=fetch, args=("short", f"{server.url}/tables/orders?limit=2000"))
    long = threading.Thread(
        target=fetch, args=("long", f"{server.url}/tables/synthetic?limit=10000000")
    )
    long.start()
    short.start()
    metrics = f"{server.url}/metrics"
    assert _wait(lambda: value(metrics, "tablestream_streams_in_progress", table="synthetic") == 1)
    # The short stream must have been let in before the signal (one asked after it is refused
    # with a 503, rightly): in flight, or already done on a fast machine.
    assert _wait(
        lambda: (
            "short" in results
            or value(metrics, "tablestream_streams_in_progress", table="orders") == 1
        )
    )
    server.proc.send_signal(signal.SIGTERM)

    assert _wait(lambda: refuses_connections(server.port), timeout=2), (
        "new connections still accepted after SIGTERM"
    )
    assert long.is_alive(), "the long stream should still be in its grace period"
    short.join(30)
    long.join(30)
    assert server.proc.wait(timeout=30) == 0
    assert results["short"].terminated and b'data-rows-sent="2000"' in results["short"].tail
    cut = results["long"]
    assert not cut.terminated and b"data-rows-sent" not in cut.tail
    assert b"<!-- tablestream:error after " in cut.tail and b"shutting down" in cut.tail
    assert cut.tail.rstrip().endswith(b"the table is incomplete.</p>")
    # Whole rows first (and, where the cut follows a batch that ends with one, its resume point).
    whole_rows = rb"(</tr>|<tbody>)\n(?:<!--ts-after [^>]*-->)?\n<!-- tablestream:error"
    assert re.search(whole_rows, cut.tail)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [200_000, 1_000_000], ids=["200k", "1M"])
def test_a_slow_reader_cut_by_a_drain_gets_whole_rows_then_the_marker_counted_cut(
    process_server, rate
):
    """Deploys cut the slow readers: they must get the marker too, and count as cut, not as
    client aborts (a reader on a slow link, as a browser on a phone or a throttled job reads).

    The reader's receive buffer is fixed at 64 KiB, as a slow link bounds what is in flight: a
    paced local reader's buffer autotunes up to tcp_rmem's maximum (32 MiB here), and reading
    what its own kernel held took curl --limit-rate 200k up to 107 s after the server exited."""
    server = process_server(
        TABLESTREAM_DB="", TABLESTREAM_SYNTHETIC_ROWS="100000000", TABLESTREAM_SHUTDOWN_GRACE="1"
    )
    got: dict[str, httpraw.RawResponse] = {}

    def read() -> None:
        got["response"] = httpraw.get(
            f"{server.url}/tables/synthetic", keep=False, rate=rate, rcvbuf=64 * 1024, timeout=60
        )

    reader = threading.Thread(target=read)
    reader.start()
    metrics = f"{server.url}/metrics"
    assert _wait(lambda: value(metrics, "tablestream_streams_in_progress") == 1)
    time.sleep(1.5)  # the reader is the bottleneck: waitress and the kernel hold bytes for it
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    # What the exited server left queued (its buffer and the kernel's) goes out at the reader's
    # pace: at 200 kB/s a few seconds.
    reader.join(60)
    assert not reader.is_alive(), "the reader still had bytes coming a minute after the exit"
    cut = got["response"]
    assert cut.status == 200 and not cut.terminated  # no terminating chunk: visibly incomplete
    tail = cut.tail
    assert b"<!-- tablestream:error after " in tail and b"shutting down" in tail, tail[-300:]
    assert tail.rstrip().endswith(b"the table is incomplete.</p>")
    # Whole rows first (and, where the cut follows a batch that ends with one, its resume point).
    whole_rows = rb"</tr>\n(?:<!--ts-after [^>]*-->)?\n<!-- tablestream:error"
    assert re.search(whole_rows, tail), tail[-900:-300]
    log = server.log_path.read_text()
    (line,) = [json.loads(x.split(" ", 4)[4]) for x in log.splitlines() if '"outcome"' in x]
    assert line["outcome"] == "cut", line
    assert "its error marker went out" in log
    assert "Traceback" not in log


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_sigterm_stops_a_server_whose_parent_ignored_sigint(settings_for, tmp_path):
    # `tablestream serve &` from a script, nohup and some supervisors start it with SIGINT
    # ignored; the drain must still end the process.
    port = free_port()
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    env.update(os.environ, TABLESTREAM_PORT=str(port), TABLESTREAM_SHUTDOWN_GRACE="2")
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tablestream", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc=proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_overload_queues_or_refuses_but_never_crashes(thread_server, settings_for):
    app = create_app(settings_for())
    server = thread_server(app, threads=2, connection_limit=4, backlog=8)
    statuses: list[int | str] = []

    def reader() -> None:
        try:
            response = httpraw.get(f"{server.url}/tables/synthetic?limit=30000", keep=False,
                                   timeout=30)  # fmt: skip
            statuses.append(response.status if response.terminated else "cut")
        except OSError as exc:
            statuses.append(type(exc).__name__)

    readers = [threading.Thread(target=reader) for _ in range(16)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    assert len(statuses) == 16
    assert statuses.count(200) >= 4, statuses
    assert all(s == 200 or isinstance(s, str) for s in statuses), statuses
    assert httpraw.get(f"{server.url}/healthz").status == 200


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    "</td></tr></table><script>alert(1)</script>",
    "<!--",
    "]]><![CDATA[<script>",
    "{{ 7*7 }}",
    "\u2028\u2029<scr\x00ipt>",
]


def test_xss_payloads_in_cells_arrive_as_text(thread_server, settings_for, tmp_path):
    import csv

    path = tmp_path / "xss.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["payload"])
        writer.writerows([p] for p in XSS)
    server = thread_server(create_app(settings_for(csv=f"xss={path}")))
    response = httpraw.get(f"{server.url}/tables/xss")
    table = parse_table(response.text)
    assert [r[0] for r in table.rows] == XSS
    body = response.text.split("<tbody>", 1)[1]
    assert "<script" not in body and "<img" not in body and "<svg" not in body
    assert "{{" in body  # rendered as text, never evaluated as a template


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/tables/synthetic?limit=1", "/tables/nope", "/tables/synthetic?limit=x"):
        with client.get(path) as response:
            headers = response.headers
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert "default-src 'none'" in headers["Content-Security-Policy"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"


def test_one_json_log_line_per_request_with_the_stream_facts(thread_server, settings_for, caplog):
    # From the trusted proxy's address: its X-Request-ID is kept (anyone else's is replaced).
    server = thread_server(create_app(settings_for(trusted_proxy="127.0.0.1")))
    with caplog.at_level(logging.INFO, logger="tablestream.access"):
        response = httpraw.get(
            f"{server.url}/tables/synthetic?limit=1234", headers={"X-Request-ID": "abc-123"}
        )
        assert _wait(lambda: any("abc-123" in r.getMessage() for r in caplog.records))
    assert response.headers["x-request-id"] == "abc-123"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tablestream.access"]
    line = next(entry for entry in lines if entry["request_id"] == "abc-123")
    assert line["table"] == "synthetic" and line["rows"] == 1234 and line["status"] == 200
    assert line["bytes"] == response.size and line["chunks"] == len(response.chunks)
    assert line["outcome"] == "completed" and line["duration_s"] > 0


def test_an_unsafe_request_id_is_replaced(client):
    for unsafe in ("<script>", "x" * 200, "a b"):
        response = client.get("/healthz", headers={"X-Request-ID": unsafe})
        assert response.headers["X-Request-ID"] != unsafe
        assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.slow
def test_a_thousand_aborted_streams_leak_no_threads_fds_or_connections(
    process_server, settings_for
):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    server = process_server(**env)
    fds = lambda: len(os.listdir(f"/proc/{server.pid}/fd"))  # noqa: E731
    threads = lambda: len(os.listdir(f"/proc/{server.pid}/task"))  # noqa: E731
    httpraw.get(f"{server.url}/tables/orders?limit=100")
    idle_fds, idle_threads, idle_rss = fds(), threads(), server.rss()
    rng = random.Random(1)
    port = server.port
    deadline = time.monotonic() + 120
    tried = 0
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        table = rng.choice(["orders", "synthetic", "nasty", "customers"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET /tables/{table} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            want, got = rng.randint(1, 400_000), 0
            while got < want:
                data = sock.recv(65536)
                if not data:
                    break
                got += len(data)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        tried += 1
    assert tried == 1000, f"only {tried} aborts in the time budget"
    metrics = f"{server.url}/metrics"
    assert _wait(lambda: value(metrics, "tablestream_streams_in_progress") == 0, timeout=30)
    assert fds() <= idle_fds + 2, (idle_fds, fds())
    assert threads() == idle_threads
    assert server.rss() - idle_rss < 8 * 1024 * 1024
    assert parse_table(httpraw.get(f"{server.url}/tables/orders?limit=5").text).rows_sent == 5
