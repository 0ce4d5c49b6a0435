"""Connection deadlines of `tablestream serve`: slow headers and idle sockets close, streams do not.

Each test runs a real server process with short deadlines and watches the socket from the
client's side: the server closing it shows as recv() returning b"" (or a reset).
"""

from __future__ import annotations

import socket
import time

import pytest

from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .servers import closed_by_server, serve_with


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_request_header_trickled_byte_by_byte_is_closed_at_the_header_deadline(
    process_server, settings_for
):
    server = serve_with(process_server, settings_for, header_timeout="1")
    with socket.create_connection(("127.0.0.1", server.port)) as loris:
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            try:
                loris.send(bytes([byte]))
            except OSError:
                closed = True
                break
            if closed_by_server(loris, within=0.25):
                closed = True
                break
        assert closed, "a header trickled for 10 s was never cut off (deadline 1 s)"
    assert httpraw.get(f"{server.url}/healthz", timeout=5).status == 200


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_connection_that_says_nothing_is_closed_at_the_header_deadline(
    process_server, settings_for
):
    server = serve_with(process_server, settings_for, header_timeout="1")
    with socket.create_connection(("127.0.0.1", server.port)) as silent:
        assert closed_by_server(silent, within=5)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    process_server, settings_for
):
    server = serve_with(process_server, settings_for, keepalive_timeout="1", header_timeout="30")
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert closed_by_server(client, within=5)


@pytest.mark.slow
def test_a_stream_outlasting_every_deadline_is_not_cut_by_them(process_server, settings_for):
    server = serve_with(
        process_server,
        settings_for,
        header_timeout="1",
        keepalive_timeout="1",
        min_send_rate="0",
        outbuf_high_watermark="65536",
        outbuf_overflow="65536",
    )
    started = time.monotonic()
    response = httpraw.get(
        f"{server.url}/tables/synthetic?limit=60000", keep=False, timeout=60, read_pause=0.05
    )
    assert time.monotonic() - started > 3  # it did outlast the deadlines
    assert response.terminated and b'data-rows-sent="60000"' in response.tail


@pytest.mark.slow
def test_a_client_far_below_the_minimum_send_rate_is_cut(process_server, settings_for):
    server = serve_with(
        process_server,
        settings_for,
        min_send_rate="2000000",
        send_rate_window="2",
        outbuf_high_watermark="65536",
        outbuf_overflow="65536",
    )
    response = httpraw.get(
        f"{server.url}/tables/synthetic.csv?limit=2000000", keep=False, timeout=60, read_pause=0.05
    )
    assert not response.terminated and response.size < 40_000_000
    metrics = f"{server.url}/metrics"

    def outcome() -> str | None:
        for name in ("cut", "client_aborted"):  # with a marker, or at the socket if it was stuck
            if value(metrics, "tablestream_streams_total", outcome=name) == 1:
                return name
        return None

    deadline = time.monotonic() + 10
    while (ended := outcome()) is None:
        assert time.monotonic() < deadline, "the slow stream was not counted as cut"
        time.sleep(0.05)
    if ended == "cut":
        assert b"# tablestream:error after " in response.tail
        assert b"slower than 2000000 bytes/s" in response.tail
