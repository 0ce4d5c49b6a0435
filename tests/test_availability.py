"""The service stays available under hostile traffic (issue 12): the short, untimed checks.

These run the reliability suite's own attack code (``loadtests.attacks``, ``loadtests.probes``,
``loadtests.drain``) against a real ``tablestream serve`` for a few seconds each. They assert
what must hold on any machine, however slow: every health check answered, the extra stream
requests refused with 503, slowloris sockets closed, the drain closing the door. How fast
(p99 <= 100 ms, 503 within 50 ms, refused within 100 ms) is the suite's verdict
(``make reliability``), not a test assertion.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import waitress

from loadtests import attacks, drain
from loadtests.probes import Probes, get
from tablestream.testing.metricsread import value

from .servers import wait_for

HOST = "127.0.0.1"
STREAM = "/tables/synthetic?limit=2000000"  # the test database's orders fit in the buffers


def _env(settings_for, **overrides: str) -> dict[str, str]:
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    env.update(overrides)
    return env


@pytest.mark.slow
def test_every_health_check_is_answered_during_stalled_readers_and_slowloris(
    process_server, settings_for
):
    # The attack comes from its own address (attacks.ATTACKER_ADDRESS), the probes from
    # 127.0.0.1, with the default per-address cap (100) in force: the attacker's 270 sockets
    # are capped, the probes are not (tests/test_client_cap.py).
    server = process_server(**_env(settings_for, TABLESTREAM_HEADER_TIMEOUT="2"))
    pool = attacks.AttackPool(HOST, server.port, 20, 250, STREAM, trickle_seconds=1.0)
    probes = Probes(HOST, server.port, server.pid)
    pool.start()
    probes.start()
    try:
        # Long enough for the slowloris sockets to be closed and reopened at least once.
        wait_for(lambda: len(probes.figures.health) >= 60, 20, "60 /healthz probes")
    finally:
        figures = probes.stop()
        pool.stop()
    assert len(figures.health) >= 10
    assert figures.unanswered("health") == 0, f"{figures.health=}"
    assert figures.small and figures.unanswered("small") == 0, f"{figures.small=}"


@pytest.mark.slow
def test_slowloris_sockets_are_closed_by_the_server_after_the_header_deadline(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, TABLESTREAM_HEADER_TIMEOUT="1"))
    pool = attacks.AttackPool(HOST, server.port, 0, 50, trickle_seconds=0.5, max_reopen=1)
    pool.start()
    try:
        wait_for(
            lambda: all(r.closed_by_server for r in pool.slowloris_records()),
            20,
            "every slowloris socket closed by the server",
        )
    finally:
        pool.stop()
    assert len(pool.slowloris_records()) == 50 and pool.connect_failures == 0


def test_stream_requests_beyond_the_slots_get_503_with_retry_after_and_are_counted(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, TABLESTREAM_STREAM_SLOTS="2"))
    metric = f"{server.url}/metrics"
    before = value(metric, "tablestream_streams_rejected_total", reason="slots_full") or 0
    replies = attacks.stream_requests(HOST, server.port, STREAM, 5, wait=10)
    try:
        statuses = sorted(r.status or 0 for r in replies)
        retry_after = [r.headers.get("retry-after") for r in replies if r.status == 503]
    finally:
        for reply in replies:
            reply.sock.close()
    after = value(metric, "tablestream_streams_rejected_total", reason="slots_full")
    assert statuses == [200, 200, 503, 503, 503], "none may wait in a queue (status 0)"
    assert all(r and r.isdigit() for r in retry_after), retry_after
    assert after == before + 3


def test_expect_100_continue_on_a_get_is_answered(process_server, settings_for):
    server = process_server(**_env(settings_for))
    result = attacks.expect_continue(HOST, server.port, "/healthz", timeout=5)
    assert result.status == 200


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@contextmanager
def _plain_waitress() -> Iterator[int]:
    """waitress itself, no tablestream code: a trivial app on a free port, in a thread."""
    server = waitress.create_server(_hello, host=HOST, port=0, threads=2)
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:  # close() from this thread pulls the descriptors out from under poll
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        stopping.set()
        server.close()
        thread.join(timeout=5)


@pytest.mark.slow
def test_plain_waitress_hangs_on_expect_100_continue_without_a_body():
    """Why the service works around it: waitress 3.0.2 sends 100 Continue, then nothing."""
    with _plain_waitress() as port:
        assert get(HOST, port, "/", timeout=5)[0] == 200  # it serves...
        result = attacks.expect_continue(HOST, port, "/", timeout=2)
        # ...but not this: drop this test and the workaround once waitress answers it.
    assert result.interim == [100] and result.status is None


@pytest.mark.slow
def test_sigterm_refuses_new_connections_and_fails_readiness_while_streams_drain(
    process_server, settings_for
):
    server = process_server(**_env(settings_for, TABLESTREAM_SHUTDOWN_GRACE="30"))
    path = "/tables/synthetic?limit=1000000"
    figures = drain.drain_under_load(server.proc, server.url, path, streams=2, grace=30)
    assert len(figures.finished) == 2, "both streams in flight complete within the grace"
    assert figures.refused_how in {"refused", "503"}
    # Refused while the streams still ran, not merely because the process had gone.
    assert figures.refused_after is not None and figures.refused_after < min(figures.finished)
    assert figures.readyz and {s for s in figures.readyz if s is not None} == {503}
