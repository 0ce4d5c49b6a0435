"""`tablestream serve --processes N`: the children share the one socket their parent bound.

The kernel's view (/proc/net/tcp and each process's file descriptors) tells which process
holds the listening socket and which one accepted a given connection, so these tests check
the mechanism itself rather than guessing it from timings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablestream.sources.demo import create_demo_db
from tablestream.testing import httpraw, refuses_connections
from tablestream.testing.metricsread import value

TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp_inodes(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 sockets whose local port is ``port`` and whose state is ``state``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def _wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _all_serving(server, processes: int = 2) -> list[int]:
    """The children, once each has opened its sources and is serving (its start-up log line)."""
    _wait_for(
        lambda: server.log_path.read_text().count("tablestream serving ") >= processes,
        what=f"{processes} processes serving",
    )
    return _children(server.pid)


@pytest.mark.slow
def test_every_process_accepts_from_the_one_socket_the_parent_bound(process_server):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2")
    children = _wait_for(
        lambda: len(kids := _children(server.pid)) == 2 and kids, what="two children"
    )
    listening = _tcp_inodes(server.port, TCP_LISTEN)
    assert len(listening) == 1, f"expected one listening socket on the port, found {listening}"
    for child in children:
        assert listening <= _socket_inodes(child), f"process {child} does not hold the socket"
    # The parent keeps it too, never accepting, to start replacements from it.
    assert listening <= _socket_inodes(server.pid)
    assert httpraw.get(f"{server.url}/tables/synthetic?limit=10").terminated


@pytest.mark.slow
def test_new_connections_go_to_the_sibling_while_one_process_drains(process_server):
    server = process_server(
        TABLESTREAM_DB="",
        TABLESTREAM_PROCESSES="2",
        TABLESTREAM_SHUTDOWN_GRACE="60",
        TABLESTREAM_OUTBUF_HIGH_WATERMARK="1048576",
        TABLESTREAM_OUTBUF_OVERFLOW="1048576",
    )
    _wait_for(lambda: len(_children(server.pid)) == 2, what="two children")
    # A stream nobody reads stays in flight, so the process serving it drains for 60 s.
    held = socket.create_connection(("127.0.0.1", server.port))
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        held.sendall(b"GET /tables/synthetic?limit=1000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        held.recv(1)  # the stream has started

        def holder() -> int | None:
            accepted = _tcp_inodes(server.port, TCP_ESTABLISHED)
            owners = [c for c in _children(server.pid) if accepted & _socket_inodes(c)]
            return owners[0] if len(owners) == 1 else None

        draining = _wait_for(holder, what="the process holding the stream")
        listening = _tcp_inodes(server.port, TCP_LISTEN)
        os.kill(draining, signal.SIGTERM)
        _wait_for(
            lambda: not listening & _socket_inodes(draining),
            what="the draining process to let go of the listening socket",
        )
        assert Path(f"/proc/{draining}").exists(), "the draining process should still be up"
        for _ in range(20):
            response = httpraw.get(f"{server.url}/tables/synthetic?limit=100", timeout=5)
            assert response.status == 200 and response.terminated
        assert Path(f"/proc/{draining}").exists(), "the stream in flight should keep it draining"
    finally:
        held.close()


@contextlib.contextmanager
def _paused(pid: int) -> Iterator[None]:
    """``pid`` stopped (SIGSTOP): it accepts nothing, so its sibling takes every new connection."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_a_stream_status_question_is_answered_by_the_process_that_did_not_serve_the_stream(
    process_server,
):
    # From the trusted proxy's address, so the test's X-Request-IDs are kept.
    server = process_server(
        TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2", TABLESTREAM_TRUSTED_PROXY="127.0.0.1"
    )
    first, second = _all_serving(server)
    for serving, other in ((first, second), (second, first)):
        request_id = f"served-by-{serving}"
        with _paused(other):
            page = httpraw.get(
                f"{server.url}/tables/synthetic?limit=10", headers={"X-Request-ID": request_id}
            )
        assert page.terminated
        with _paused(serving):
            answer = httpraw.get(f"{server.url}/streams/{request_id}", timeout=10)
            unknown = httpraw.get(f"{server.url}/streams/never-{request_id}", timeout=10)
        assert answer.status == 200, answer.body
        assert json.loads(answer.body) == {
            "request_id": request_id,
            "table": "synthetic",
            "outcome": "completed",
            "rows_sent": 10,
        }
        assert unknown.status == 404


@pytest.mark.slow
def test_a_page_whose_reports_reach_the_other_process_is_still_held_near_its_parser(
    process_server,
):
    keep = 100_000
    server = process_server(
        TABLESTREAM_DB="",
        TABLESTREAM_PROCESSES="2",
        TABLESTREAM_GZIP="false",
        TABLESTREAM_PAGE_ROWS=str(keep),
        TABLESTREAM_SYNTHETIC_ROWS="2000000",
    )
    serving, other = _all_serving(server)
    with _paused(other):
        response = urllib.request.urlopen(f"{server.url}/tables/synthetic", timeout=30)
        head = response.read(6000)
    status_url = re.search(r'data-status-url="([^"]+)"', head.decode()).group(1)

    def report(parsed: int) -> None:  # every report is accepted by the process not serving it
        with _paused(serving):
            answer = httpraw.get(f"{server.url}{status_url}?parsed={parsed}", timeout=10)
        assert answer.status == 200, answer.body

    received: list[bytes] = [head]

    def read() -> None:  # as a browser does: everything, as fast as it comes
        while piece := response.read1(65536):
            received.append(piece)

    def rows_received() -> int:
        return b"".join(received).count(b"<tr><td>")

    report(0)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        held, deadline = -1, time.monotonic() + 20
        while time.monotonic() < deadline and held != (now := rows_received()):
            held = now
            for _ in range(4):  # reports keep coming, more often than the stream's patience
                report(0)
                time.sleep(0.25)
        # A parser stuck at row 0: held the window ahead, less up to a batch and a chunk.
        assert keep - 256 - 300 <= held <= keep, held
        report(keep)  # the parser catches up: the rest may come, as counts
        reader.join(60)
        assert not reader.is_alive()
    finally:
        response.close()
        reader.join(5)
    body = b"".join(received)
    assert keep <= body.count(b"<tr><td>") < keep + 1024
    assert b'data-rows-sent="2000000"' in body[-2000:]


@pytest.mark.slow
def test_a_process_that_dies_is_replaced_from_the_same_socket(process_server):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2")
    first = _wait_for(lambda: len(kids := _children(server.pid)) == 2 and kids, what="children")
    os.kill(first[0], signal.SIGKILL)  # as the OOM killer would
    now = _wait_for(
        lambda: len(kids := _children(server.pid)) == 2 and first[0] not in kids and kids,
        what="a replacement process",
    )
    assert first[1] in now
    [replacement] = set(now) - {first[1]}
    listening = _tcp_inodes(server.port, TCP_LISTEN)
    _wait_for(lambda: listening <= _socket_inodes(replacement), what="the replacement to listen")
    for _ in range(10):
        assert httpraw.get(f"{server.url}/tables/synthetic?limit=100").terminated
    log = server.log_path.read_text()
    assert f"process {first[0]} exited with -9; started process {replacement} in its place" in log


@pytest.mark.slow
def test_the_shared_board_loses_a_dead_processs_streams_and_goes_with_the_server(process_server):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2")
    first, second = _all_serving(server)
    environ = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
    [shared] = [
        e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"TABLESTREAM_SHARED_DIR=")
    ]
    with _paused(second):
        assert httpraw.get(f"{server.url}/tables/synthetic?limit=5").terminated
    [record] = Path(shared).glob("*.json")
    assert json.loads(record.read_text())["pid"] == first
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: not record.exists(), what="the dead process's record to be removed")
    server.stop()
    assert not Path(shared).exists()


@pytest.mark.slow
def test_the_supervisor_gives_up_when_replacements_cannot_start(process_server, tmp_path):
    db = create_demo_db(tmp_path / "gone.sqlite3", rows=10, customers=5)
    server = process_server(TABLESTREAM_DB=str(db), TABLESTREAM_PROCESSES="2")
    children = _all_serving(server)
    db.unlink()  # a new process now refuses to start: its database is missing
    os.kill(children[0], signal.SIGKILL)
    assert server.proc.wait(timeout=90) == 1
    log = server.log_path.read_text()
    assert "5 processes in a row ended within 10 s of starting: giving up" in log
    assert not Path(f"/proc/{children[1]}").exists(), "the healthy process should be stopped too"


@pytest.mark.slow
def test_sighup_replaces_every_process_without_dropping_a_request(process_server):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2")
    old = set(_all_serving(server))
    long_stream: list[httpraw.RawResponse] = []
    reader = threading.Thread(
        target=lambda: long_stream.append(
            httpraw.get(f"{server.url}/tables/synthetic?limit=300000", keep=False)
        )
    )
    reader.start()
    _wait_for(
        lambda: value(f"{server.url}/metrics", "tablestream_streams_in_progress") == 1,
        what="the stream to begin on one of the old processes",
    )
    os.kill(server.pid, signal.SIGHUP)
    short = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # requests all through the reload
        short.append(httpraw.get(f"{server.url}/tables/synthetic?limit=100", timeout=10))
    new = set(
        _wait_for(
            lambda: len(kids := _children(server.pid)) == 2 and not set(kids) & old and kids,
            timeout=30,
            what="two new processes and no old one",
        )
    )
    reader.join(timeout=60)
    assert long_stream and long_stream[0].terminated, "the stream in flight was cut"
    assert short and all(r.status == 200 and r.terminated for r in short)
    assert len(new) == 2
    assert httpraw.get(f"{server.url}/tables/synthetic?limit=100").terminated


@pytest.mark.slow
def test_a_sighup_whose_new_processes_cannot_start_leaves_the_old_ones_serving(
    process_server, tmp_path
):
    db = create_demo_db(tmp_path / "gone.sqlite3", rows=10, customers=5)
    server = process_server(TABLESTREAM_DB=str(db), TABLESTREAM_PROCESSES="2")
    old = set(_all_serving(server))
    db.unlink()  # the new processes will refuse to start: their database is missing
    os.kill(server.pid, signal.SIGHUP)
    _wait_for(
        lambda: "SIGHUP reload failed" in server.log_path.read_text(),
        timeout=30,
        what="the reload to be judged",
    )
    _wait_for(lambda: set(_children(server.pid)) == old, what="only the old processes left")
    assert server.proc.poll() is None
    for _ in range(5):
        assert httpraw.get(f"{server.url}/tables/orders?limit=5").terminated


@pytest.mark.slow
def test_children_run_with_the_parents_command_line_flags_not_just_its_environment(
    process_server,
):
    server = process_server(
        args=("--processes", "2", "--threads", "3"), TABLESTREAM_DB="", TABLESTREAM_THREADS="5"
    )
    children = _all_serving(server)
    assert len(children) == 2
    started = [
        line for line in server.log_path.read_text().splitlines() if "tablestream serving" in line
    ]
    assert len(started) == 2 and all(re.search(r" threads=3\b", line) for line in started), started
    for pid in children:
        # 3 workers plus the main loop and at most a helper or two; the 5 of the environment or
        # the default 12 would show here.
        assert len(os.listdir(f"/proc/{pid}/task")) <= 3 + 3


@pytest.mark.slow
def test_stopping_the_whole_server_refuses_new_connections_while_streams_drain(process_server):
    server = process_server(
        TABLESTREAM_DB="", TABLESTREAM_PROCESSES="2", TABLESTREAM_SHUTDOWN_GRACE="30"
    )
    _all_serving(server)
    held = socket.create_connection(("127.0.0.1", server.port))
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        held.sendall(b"GET /tables/synthetic?limit=1000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        held.recv(1)  # the stream is in flight and nobody reads it: its process drains
        os.kill(server.pid, signal.SIGTERM)

        _wait_for(
            lambda: refuses_connections(server.port), timeout=2, what="new connections refused"
        )
        assert server.proc.poll() is None, "the stream in flight should keep the server draining"
    finally:
        held.close()
