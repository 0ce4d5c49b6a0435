"""A stream request with no slot is refused by the server's loop thread, whole and counted, and a
burst is judged as a burst (service/server/door.py), against a real ``tablestream serve``."""

from __future__ import annotations

import socket

import pytest

from loadtests import attacks
from tablestream.server.admission import OVERLOADED, Admission, Rejected
from tablestream.server.lag import SchedulingLag
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

HOST = "127.0.0.1"
STREAM = "/tables/synthetic?limit=2000000"  # never read: the stream holds its slot


def _env(settings_for, **overrides: str) -> dict[str, str]:
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    env.update({f"TABLESTREAM_{k.upper()}": v for k, v in overrides.items()})
    return env


def _hold(port: int, count: int) -> list[attacks.Reply]:
    held = attacks.stream_requests(HOST, port, STREAM, count, wait=10)
    assert [r.status for r in held] == [200] * count
    return held


def _head(port: int, path: str) -> bytes:
    """Everything the server sends for a HEAD of ``path`` until it closes the connection."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


def test_a_stream_request_with_no_slot_gets_a_whole_503_from_the_loop_thread_and_is_counted(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, stream_slots="1", admit_max_lag_ms="0"))
    metric = f"{server.url}/metrics"
    before = value(metric, "tablestream_streams_rejected_total", reason="slots_full") or 0
    held = _hold(server.port, 1)
    try:
        refused = httpraw.get(server.url + STREAM, keep=False, timeout=10)
        head = _head(server.port, STREAM)
        small = httpraw.get(server.url + "/tables/synthetic?limit=10", keep=False, timeout=10)
        described = httpraw.get(server.url + "/tables/synthetic.json", keep=False, timeout=10)
    finally:
        for reply in held:
            reply.sock.close()
    after = value(metric, "tablestream_streams_rejected_total", reason="slots_full")
    # The door's answer (a view's 503 is the HTML error page): plain text, complete, closing.
    assert refused.status == 503
    assert refused.headers["content-type"] == "text/plain; charset=utf-8"
    assert refused.headers["retry-after"].isdigit()
    assert refused.headers["connection"] == "close"
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert refused.headers["cache-control"] == "private, no-store"
    assert int(refused.headers["content-length"]) == len(refused.body) > 0
    assert "All 1 stream slots" in refused.text and "?limit=" in refused.text
    status_line, _, rest = head.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 503 Service Unavailable" and rest.endswith(b"\r\n\r\n")
    assert b"\r\nRetry-After: " in rest  # and no body: the connection closed after the head
    # What needs no slot passes the door while the slot is taken.
    assert small.status == 200 and described.status == 200
    assert after == before + 2


def test_a_burst_is_judged_as_a_burst_not_each_request_against_an_idle_server(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, stream_slots="3", admit_max_lag_ms="0"))
    replies = attacks.stream_requests(
        HOST, server.port, STREAM, 20, wait=10, source="127.0.3.1", per_address=4
    )
    try:
        statuses = sorted(r.status or 0 for r in replies)
        types = {r.headers.get("content-type") for r in replies if r.status == 503}
    finally:
        for reply in replies:
            reply.sock.close()
    assert statuses == [200] * 3 + [503] * 17, "none may wait in a queue (status 0)"
    # Each refused at the door: the stream requests it had passed on counted as admitted
    # before their views decided (else it passes all 20 and the views refuse 17, in HTML).
    assert types == {"text/plain; charset=utf-8"}


def test_a_stream_request_that_ends_before_its_view_asks_for_a_slot_is_no_longer_counted(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, stream_slots="1", admit_max_lag_ms="0"))
    for _ in range(3):  # each passes the door as an expected stream, then ends 404 / 400
        assert httpraw.get(server.url + "/tables/no-such-table", timeout=10).status == 404
        assert httpraw.get(server.url + "/tables/synthetic?_sort=nope", timeout=10).status == 400
    held = _hold(server.port, 1)  # the one slot is still there for a stream
    for reply in held:
        reply.sock.close()


def _lag(seconds: float) -> SchedulingLag:
    lag = SchedulingLag()  # never started: its figure is what is set
    lag.seconds = seconds
    return lag


def test_the_ramp_counts_the_stream_requests_already_passed_on():
    admission = Admission(100, max_lag=0.05, floor=2, per_second=3, lag=_lag(0.0))
    expected = []
    for _ in range(5):  # the floor (2) and the ramp's 3
        assert admission.refusal() is None
        expected.append(admission.expect())
    refusal = admission.refusal()
    assert refusal is not None and refusal.reason == OVERLOADED
    tickets = [admission.admit(f"10.0.0.{i}", e) for i, e in enumerate(expected)]
    assert admission.in_use == 5 and admission.expected == 0
    for ticket in tickets:
        ticket.release()
    assert admission.in_use == 0


def test_a_refused_or_abandoned_expectation_is_settled_once():
    admission = Admission(1, lag=_lag(0.0))
    first, second = admission.expect(), admission.expect()
    assert admission.refusal() is not None  # 1 slot, 2 expected
    ticket = admission.admit("a", first)
    with pytest.raises(Rejected):
        admission.admit("b", second)  # refused by its view: settled all the same
    second.settle()  # and again at the request's end: nothing more
    assert admission.expected == 0 and admission.in_use == 1
    ticket.release()
    assert admission.refusal() is None
