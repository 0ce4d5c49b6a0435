"""The per-address connection cap (TABLESTREAM_CONNECTIONS_PER_CLIENT, issue 29), on a real server.

Linux routes the whole of 127.0.0.0/8 to loopback, so a client socket bound to 127.0.0.2 before
it connects is a second client address: the flood comes from there, the checks from 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tablestream.testing.metricsread import value

from .servers import serve_with

REJECTED = "tablestream_connections_rejected_total"


def _connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()  # a connect the server refused or reset at once
        raise
    return sock


@contextmanager
def _held(source: str, port: int, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = [stack.enter_context(_connect_from(source, port)) for _ in range(count)]
        yield socks


def _ends_within(sock: socket.socket, seconds: float) -> bool:
    """Does the server close or reset ``sock`` within ``seconds``?"""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _rejected_at_once(source: str, port: int, seconds: float) -> bool:
    """Is a new connection from ``source`` reset (during connect(), on a loaded machine, or
    right after) within ``seconds``, without a byte of an answer?"""
    try:
        sock = _connect_from(source, port)
    except ConnectionResetError:
        return True
    with sock:
        return _ends_within(sock, seconds)


def _healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    return sock.recv(4096)


def _healthz_from(source: str, port: int) -> bytes:
    with _connect_from(source, port) as sock:
        return _healthz(sock)


def test_connections_over_the_cap_from_one_address_are_reset_while_others_are_served(
    process_server, settings_for
):
    server = serve_with(process_server, settings_for, connections_per_client="5")
    metrics = f"{server.url}/metrics"
    assert value(metrics, REJECTED, reason="per_client") == 0  # the series exists at 0
    with _held("127.0.0.2", server.port, 5) as held:
        time.sleep(0.3)  # the server has accepted all five
        started = time.monotonic()
        assert all(_rejected_at_once("127.0.0.2", server.port, 2) for _ in range(3))
        reset_within = time.monotonic() - started
        assert _healthz_from("127.0.0.1", server.port).startswith(b"HTTP/1.1 200 ")
        assert all(_healthz(sock).startswith(b"HTTP/1.1 200 ") for sock in held)
    assert reset_within < 2
    assert value(metrics, REJECTED, reason="per_client") == 3
    time.sleep(0.3)  # the five have closed: the address has its connections back
    assert _healthz_from("127.0.0.2", server.port).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_the_trusted_proxy_address_is_exempt_from_the_cap(process_server, settings_for):
    server = serve_with(
        process_server, settings_for, connections_per_client="2", trusted_proxy="127.0.0.3"
    )
    with _held("127.0.0.3", server.port, 6) as proxied:
        time.sleep(0.3)
        assert all(_healthz(sock).startswith(b"HTTP/1.1 200 ") for sock in proxied)
        with _held("127.0.0.2", server.port, 2) as direct:
            time.sleep(0.3)
            assert not any(_ends_within(sock, 0.5) for sock in direct)  # the cap is 2
            assert _rejected_at_once("127.0.0.2", server.port, 2)  # the third
    assert value(f"{server.url}/metrics", REJECTED, reason="per_client") == 1


def test_a_cap_of_zero_lets_one_address_hold_many_connections(process_server, settings_for):
    server = serve_with(process_server, settings_for, connections_per_client="0")
    with _held("127.0.0.2", server.port, 150) as held:
        time.sleep(0.3)
        assert _healthz(held[-1]).startswith(b"HTTP/1.1 200 ")
    assert value(f"{server.url}/metrics", REJECTED, reason="per_client") == 0
