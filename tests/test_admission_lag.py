"""Past a floor of streams, a process whose CPU is spent refuses new streams instead of slowing all.

service/server/lag.py measures how late a thread of the process wakes (its wait for the
interpreter); service/server/admission.py refuses a stream past ``floor`` while that exceeds
``max_lag`` (503 ``overloaded``, issue 30). The first tests drive the rule with a measured
figure set by hand; the last one saturates a real server with full-speed streams.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tablestream.server.admission import OVERLOADED, Admission, Rejected
from tablestream.server.lag import SchedulingLag
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

from .servers import wait_for


class _Figure(SchedulingLag):
    """A lag whose figure the test sets (its sampler never runs)."""

    def start(self) -> SchedulingLag:
        return self

    @property
    def now(self) -> float:
        return self.seconds


def test_a_lagging_process_refuses_streams_past_the_floor_and_admits_when_it_recovers():
    lag = _Figure()
    admission = Admission(slots=100, max_lag=0.05, floor=2, lag=lag)
    lag.seconds = 0.2
    admission.admit("a"), admission.admit("b")  # the floor is always admitted
    with pytest.raises(Rejected) as refused:
        admission.admit("c")
    assert refused.value.reason == OVERLOADED and "200 ms" in refused.value.message
    assert admission.in_use == 2  # the refusal took no slot
    lag.seconds = 0.01
    admission.admit("c")
    assert admission.in_use == 3


def test_without_a_lag_limit_only_the_slots_count():
    lag = _Figure()
    lag.seconds = 10.0
    admission = Admission(slots=3, max_lag=0.0, floor=0, lag=lag)
    for client in "abc":
        admission.admit(client)
    assert admission.in_use == 3


def test_the_sampler_measures_a_thread_that_holds_the_interpreter():
    lag = SchedulingLag().start()
    time.sleep(0.3)
    quiet = lag.seconds
    stop = time.monotonic() + 1.0
    while time.monotonic() < stop:  # pure Python: the sampler waits for the GIL
        sum(range(1000))
    assert lag.seconds > quiet + 0.001, (quiet, lag.seconds)


def _read_flat_out(port: int, stop: threading.Event) -> None:
    """A reader that takes a stream as fast as it comes, until ``stop``."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /tables/synthetic?limit=10000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        while not stop.is_set() and sock.recv(1 << 20):
            pass


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_server_rendering_flat_out_answers_a_further_stream_503_overloaded(
    process_server, settings_for
):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    # Five full-speed readers hold the smoothed lag at 3-7 ms here (three: 2.2-3.8 ms, and a
    # fresh-clone CI run once saw it under the limit for 5 s after the refusal); limit 1.5 ms.
    env.update(TABLESTREAM_ADMIT_MAX_LAG_MS="1.5", TABLESTREAM_STREAMS_ALWAYS_ADMITTED="2")
    server = process_server(**env)
    metrics = f"{server.url}/metrics"
    stop = threading.Event()
    readers = [
        threading.Thread(target=_read_flat_out, args=(server.port, stop), daemon=True)
        for _ in range(5)
    ]
    for reader in readers:
        reader.start()
    try:
        refused = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and refused is None:
            time.sleep(0.3)
            reply = httpraw.get(f"{server.url}/tables/synthetic?limit=2000000", max_bytes=65536)
            if reply.status == 503:
                refused = reply
        assert refused is not None, "5 full-speed streams never made the process refuse another"
        assert refused.headers.get("retry-after")
        assert "capacity" in refused.text
        assert value(metrics, "tablestream_streams_rejected_total", reason="overloaded") >= 1
        wait_for(  # the gauge is exported about once a second; the readers still run
            lambda: value(metrics, "tablestream_scheduling_lag_seconds") > 0.0015,
            timeout=5,
            what="tablestream_scheduling_lag_seconds above the 1.5 ms limit",
            step=0.25,
        )
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=10)


def test_past_the_floor_a_burst_of_arrivals_is_admitted_only_as_fast_as_the_ramp_allows():
    lag = _Figure()  # 0 ms: the CPU looks idle, as it does before a burst's streams run
    admission = Admission(slots=100, max_lag=0.05, floor=2, per_second=3, lag=lag)
    for client in "abcde":  # the floor, then the three the bucket holds
        admission.admit(client)
    with pytest.raises(Rejected) as refused:
        admission.admit("f")
    assert refused.value.reason == OVERLOADED and "3 new streams a second" in refused.value.message
    time.sleep(0.4)  # 0.4 s at 3 a second: one more
    admission.admit("f")
    with pytest.raises(Rejected):
        admission.admit("g")
    assert admission.in_use == 6


def test_a_sampler_starved_of_the_interpreter_counts_its_own_wait():
    lag = SchedulingLag().start()
    time.sleep(0.2)
    lag._asked = time.monotonic() - 0.5  # as if it had gone to sleep 0.5 s ago and not woken
    assert lag.now >= 0.4 > lag.seconds
