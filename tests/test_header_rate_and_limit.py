"""A request header must keep coming, and a full server drops who waits, not who is served.

Issue 29: a header trickled a byte every few seconds is closed after the initial allowance
(``TABLESTREAM_HEADER_MIN_RATE``), not after the whole header deadline, while one that arrives
at a fair rate is given its time; at ``TABLESTREAM_CONNECTION_LIMIT`` the oldest connection
waiting for a request is dropped so a new client is still answered, and a connection in
service is never the one dropped. Real server processes, raw sockets.
"""

from __future__ import annotations

import socket
import time

import pytest

from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .servers import closed_by_server, serve_with

CLOSED = "tablestream_connections_closed_total"
# A 1 s allowance from a header's first byte, then 500 B/s, within 20 s.
MIN_RATE_1S = {"header_timeout": "20", "header_initial_timeout": "1", "header_min_rate": "500"}
HEADER = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"


def _send_over(sock: socket.socket, data: bytes, seconds: float, pieces: int) -> float | None:
    """Send ``data`` in ``pieces`` evenly over ``seconds``; the time the server closed, or None."""
    started = time.monotonic()
    size = -(-len(data) // pieces)
    for i in range(pieces):
        try:
            sock.sendall(data[i * size : (i + 1) * size])
        except OSError:
            return time.monotonic() - started
        time.sleep(seconds / pieces)
    return None


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_header_slower_than_the_minimum_rate_is_closed_after_the_initial_allowance(
    process_server, settings_for
):
    server = serve_with(
        process_server,
        settings_for,
        **MIN_RATE_1S,
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as loris:
        loris.sendall(b"GET /healthz HTTP/1.1\r\n")  # 23 bytes: 0.05 s more than the 1 s
        assert closed_by_server(loris, 6), "a stalled header outlived its 1 s allowance by 5 s"
    assert time.monotonic() - started < 4  # the allowance (1 s) plus a tick, not the 20 s
    assert value(f"{server.url}/metrics", CLOSED, reason="header_rate") >= 1


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_connection_that_has_sent_nothing_keeps_the_whole_header_timeout(
    process_server, settings_for
):
    server = serve_with(
        process_server, settings_for, header_timeout="3", header_initial_timeout="0.5"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as preconnect:
        assert not closed_by_server(preconnect, 1.8)  # a browser's preconnect: not a trickle
        assert closed_by_server(preconnect, 4)
    assert value(f"{server.url}/metrics", CLOSED, reason="header_timeout") >= 1


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_header_arriving_at_a_fair_rate_gets_more_than_the_initial_allowance(
    process_server, settings_for
):
    server = serve_with(
        process_server,
        settings_for,
        **MIN_RATE_1S,
    )
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        # 4 KB over 2.5 s: ~1.6 KB/s, three times the minimum rate; twice the initial allowance.
        assert _send_over(client, HEADER, seconds=2.5, pieces=10) is None
        client.settimeout(5)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_at_the_connection_limit_the_oldest_waiting_connection_makes_room(
    process_server, settings_for
):
    server = serve_with(
        process_server,
        settings_for,
        connection_limit="20",
        connections_per_client="0",
        header_timeout="60",
        header_initial_timeout="60",
    )
    # A stream in service first (its client does not read): it must never be the one dropped.
    served = socket.create_connection(("127.0.0.1", server.port))
    served.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    served.sendall(b"GET /tables/synthetic?limit=1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    waiting = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
    try:
        for sock in waiting:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a header begun, never finished
        # The limit is full of waiting connections; a new client is still answered, at once.
        started = time.monotonic()
        reply = httpraw.get(f"{server.url}/healthz", timeout=5)
        assert reply.status == 200 and time.monotonic() - started < 2
        assert closed_by_server(waiting[0], 2), "the oldest waiting connection was kept"
        assert value(f"{server.url}/metrics", CLOSED, reason="at_limit") >= 10
        served.settimeout(5)
        assert served.recv(65536).startswith(b"HTTP/1.1 200")  # the stream still flows
        assert served.recv(65536)
    finally:
        served.close()
        for sock in waiting:
            sock.close()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_the_memory_of_a_crowd_of_connections_is_given_back_when_they_go(
    process_server, settings_for
):
    server = serve_with(process_server, settings_for, connections_per_client="0")
    assert httpraw.get(f"{server.url}/healthz", timeout=5).status == 200
    idle = server.rss()
    crowd = []
    try:
        for _ in range(5000):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a header begun
            crowd.append(sock)
        time.sleep(1)
        held = server.rss()
        assert held > idle + 8 * 1024 * 1024  # the crowd did cost memory (~3 KiB each)
    finally:
        for sock in crowd:
            sock.close()
    # At least half of what the crowd took comes back (measured: 66-95 %; without the
    # collection and trim, none of it: 38 -> 66 -> 66 MiB with 10,000). What stays is in
    # partly used allocator arenas (tracemalloc finds only ~0.7 MiB of live Python objects
    # left, the grown tables of the loop's dicts), which depends on what else ran meanwhile.
    kept = lambda: server.rss() - idle  # noqa: E731
    deadline = time.monotonic() + 10
    while kept() * 2 > held - idle and time.monotonic() < deadline:
        time.sleep(0.25)
    assert kept() * 2 <= held - idle, (
        f"RSS idle {idle >> 20} MiB, with 5,000 connections {held >> 20} MiB, "
        f"after {server.rss() >> 20} MiB"
    )
