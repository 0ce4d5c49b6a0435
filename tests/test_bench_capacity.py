"""The capacity benchmark's own logic: its readers hold their rate, its verdicts judge right.

``bench/capacity.py`` decides whether the service meets issue 30's targets; a reader that read
faster than asked, or a verdict that passed a missed target, would make its table a lie. The
readers are checked against a real waitress server, the verdicts against figures given here.
"""

from __future__ import annotations

import socket

import pytest

from bench.capacity import FAIL, MB, MIB, PASS, SKIP, Run, verdicts
from bench.readers import Reader, read_at_rate
from tablestream import create_app

from .servers import wait_for


def _reader(rate: float, status: int = 200, first_byte: float = 0.001, retry: bool = False):
    return Reader(status, retry, first_byte, int(rate * 10), 10.0, False)


def _run(n: int, rate: int, ratios: list[float], refused: int = 0, **figures) -> Run:
    readers = [_reader(rate * r) for r in ratios]
    readers += [_reader(0, status=503, retry=True) for _ in range(refused)]
    values = {
        "server_cpu": 1.0,
        "client_cpu": 0.1,
        "idle_rss": 40 * MIB,
        "peak_rss": 40 * MIB + len(ratios) * MIB // 2,
        "after_rss": 41 * MIB,
        "threads": 12,
        "healthz": [0.01] * 100,
        "small": [0.05] * 10,
        **figures,
    }
    return Run(n=n, rate=rate, seconds=10.0, readers=readers, **values)


def _judged(lines: list[tuple[str, str]], starts: str) -> str:
    return next(status for status, text in lines if text.startswith(starts))


def test_all_readers_accepted_at_their_rate_pass_and_one_refused_fails():
    served = _run(32, 2 * MB, [0.95] * 32)
    short = _run(32, 2 * MB, [0.95] * 8, refused=24)
    slow = _run(32, 2 * MB, [0.95] * 31 + [0.85])
    assert _judged(verdicts([served], None), "32 readers") == PASS
    assert _judged(verdicts([short], None), "32 readers") == FAIL
    assert _judged(verdicts([slow], None), "32 readers") == FAIL
    assert _judged(verdicts([served], None), "256 readers") == SKIP


def test_overload_is_judged_against_the_8_reader_aggregate_and_on_fairness():
    base = _run(8, 2 * MB, [1.0] * 8)  # 16 MB/s
    held = _run(128, 2 * MB, [0.1] * 128)  # 25.6 MB/s, every reader alike
    collapsed = _run(128, 2 * MB, [0.05] * 8 + [0.04] * 8)  # 1.44 MB/s
    unfair = _run(128, 2 * MB, [0.2] * 64 + [0.1] * 64)
    lines = verdicts([base, held], None)
    assert _judged(lines, "overload 128 x 2 MB/s: aggregate") == PASS
    assert _judged(lines, "overload 128 x 2 MB/s: fastest") == PASS
    assert _judged(verdicts([base, collapsed], None), "overload 128 x 2 MB/s: aggregate") == FAIL
    assert _judged(verdicts([base, unfair], None), "overload 128 x 2 MB/s: fastest") == FAIL
    assert _judged(verdicts([held], None), "overload 128") == SKIP  # no base, no judgement


def test_a_refusal_without_retry_after_or_slower_than_50_ms_fails():
    base = _run(8, 2 * MB, [1.0] * 8)
    prompt = _run(128, 2 * MB, [0.1] * 8, refused=120)
    late = _run(128, 2 * MB, [0.1] * 8, refused=119)
    late.readers.append(_reader(0, status=503, first_byte=0.2, retry=True))
    bare = _run(128, 2 * MB, [0.1] * 8, refused=119)
    bare.readers.append(_reader(0, status=503, retry=False))
    assert _judged(verdicts([base, prompt], None), "overload 128 x 2 MB/s: 0 of 120") == PASS
    assert _judged(verdicts([base, late], None), "overload 128 x 2 MB/s: 1 of 120") == FAIL
    assert _judged(verdicts([base, bare], None), "overload 128 x 2 MB/s: 1 of 120") == FAIL


def test_probe_memory_and_cpu_targets_are_judged_on_the_worst_run():
    good = _run(32, 2 * MB, [1.0] * 32)
    slow_probe = _run(8, 2 * MB, [1.0] * 8, healthz=[0.01] * 98 + [0.5] * 2)
    fat = _run(8, 2 * MB, [1.0] * 8, peak_rss=40 * MIB + 16 * MIB)
    leaky = _run(8, 2 * MB, [1.0] * 8, after_rss=50 * MIB)
    cpu_per_byte = good.cpu_per_byte
    assert _judged(verdicts([good], cpu_per_byte), "slow reader CPU") == PASS
    assert _judged(verdicts([good], cpu_per_byte / 2), "slow reader CPU") == FAIL
    assert _judged(verdicts([good, slow_probe], None), "/healthz p99") == FAIL
    assert _judged(verdicts([good], None), "/healthz p99") == PASS
    assert _judged(verdicts([good, fat], None), "RSS per open stream") == FAIL
    assert _judged(verdicts([good], None), "RSS per open stream") == PASS
    assert _judged(verdicts([good, leaky], None), "RSS after") == FAIL
    assert _judged(verdicts([good], None), "10-row page") == PASS


@pytest.fixture
def server(thread_server, settings_for):
    return thread_server(create_app(settings_for(stream_slots="1", threads="4")))


def test_a_refused_reader_reports_the_503_its_retry_after_and_how_fast_it_came(server):
    port = int(server.server.effective_port)
    path = "/tables/synthetic?limit=1000000"
    holder = read_at_rate("127.0.0.1", port, path, 100_000, 0.3, source="127.0.2.1")
    assert holder.status == 200  # alone, it gets the slot
    admission = server.app.extensions["tablestream"].admission
    wait_for(lambda: admission.in_use == 0, 5, "the first reader's slot given back")
    # Hold the one slot with a reader that does not read, then ask for a second stream.
    with socket.create_connection(("127.0.0.1", port)) as hog:
        hog.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert hog.recv(64).startswith(b"HTTP/1.1 200")
        refused = read_at_rate("127.0.0.1", port, path, 100_000, 2.0, source="127.0.2.2")
    assert refused.status == 503 and refused.retry_after
    assert 0 < refused.first_byte < 2.0 and refused.seconds < 2.0  # not read to the window's end


@pytest.mark.slow
def test_a_rate_limited_reader_holds_its_rate_within_ten_percent_for_two_seconds(server):
    port = int(server.server.effective_port)
    got = read_at_rate(
        "127.0.0.1", port, "/tables/synthetic?limit=1000000", 2 * MB, 2.0, source="127.0.2.9"
    )
    assert got.status == 200 and not got.ended
    assert 0.9 <= got.rate / (2 * MB) <= 1.1, got
