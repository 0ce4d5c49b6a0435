"""What sharing the per-client cap, the failure budget and the board through Redis costs.

Why it exists: issue 31 asks whether a page's progress report should be routed to its stream's
instance through the balancer or left in a shared store; docs/redis.md defends the store with
these figures. Against the machine's Redis (127.0.0.1:6379, a key prefix of its own, removed
at the end), with the service's own classes:

- each operation's round trip (taking and giving back a lease, a record posted, a report
  passed on, the pacer's look, a failure spent), median and p99 over ``N`` calls;
- a report's way from the instance that received it to the stream's pacer, which looks every
  ``POLL_S``: report → seen, median and p99, Redis against the ``--processes`` directory board;
- the Redis commands one stream costs, counted at the client, and a stream's wall time with and
  without Redis (two real ``tablestream serve``, ``limit=2000`` CSV, which takes a slot).

``python -m bench.shared_store`` (about 40 s).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from tablestream.access.budget import FailureBudget, RedisFailureBudget
from tablestream.observe.board import POLL_S, Board
from tablestream.observe.status import RecentStreams
from tablestream.shared import ClientLeases, RedisBoard, SharedStore
from tablestream.testing import ServerProcess

from .run import server_env

REDIS = "redis://127.0.0.1:6379/0"
N = 2000
REPORTS = 100
STREAMS = 300


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"{statistics.median(samples) * 1000:.3f} ms | {p99 * 1000:.3f} ms"


def _timed(call: Callable[[int], object], n: int = N) -> list[float]:
    took = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        took.append(time.perf_counter() - start)
    return took


def operations(prefix: str) -> None:
    store = SharedStore(REDIS, prefix, 0.1)
    leases = ClientLeases(store)
    board_a = RedisBoard(store, None, "a")
    board_b = RedisBoard(SharedStore(REDIS, prefix, 0.1), None, "b")
    budget = RedisFailureBudget(store, 100_000, FailureBudget(100_000))
    record = {"table": "t", "outcome": "in_progress", "rows_sent": 0, "owner": None}
    board_a.post("page", record)
    poll = board_a.reports("page")

    def lease(i: int) -> None:
        leases.give_back("10.0.0.1", leases.take("10.0.0.1", 4))

    print("| operation | round trips | median | p99 |\n|---|---|---|---|")
    for name, trips, call in (
        ("lease taken and given back (a stream's slot)", 2, lease),
        ("record posted (a stream's start, or end)", 1, lambda i: board_a.post(f"s{i}", record)),
        ("report passed on by another instance", 2, lambda i: board_b.report("page", None, i)),
        ("the pacer's look for a report", 1, lambda i: poll()),
        ("wrong credential spent", 1, lambda i: budget.fail(f"10.1.{i % 250}.{i // 250}")),
    ):
        print(f"| {name} | {trips} | {_ms(_timed(call))} |")


def report_way(prefix: str) -> None:
    """B receives a report; A's pacer looks every POLL_S: the time until it sees it."""
    with tempfile.TemporaryDirectory() as shared_dir:
        ways = {
            "Redis": (
                RedisBoard(SharedStore(REDIS, prefix, 0.1), None, "a"),
                RedisBoard(SharedStore(REDIS, prefix, 0.1), None, "b"),
            ),
            "--processes directory": (Board(shared_dir, pid=1), Board(shared_dir, pid=2)),
        }
        print(f"\n| board | report → seen by the pacer (looks every {POLL_S} s): median | p99 |")
        print("|---|---|---|")
        for name, (a, b) in ways.items():
            RecentStreams(board=a).observer("t", "paced")
            poll = a.reports("paced")
            seen: dict[int, float] = {}
            stop = threading.Event()

            def pacer(
                poll: Callable[[], int | None] = poll,
                seen: dict = seen,
                stop: threading.Event = stop,
            ) -> None:
                while not stop.is_set():
                    got = poll()
                    if got is not None:
                        seen.setdefault(got, time.perf_counter())
                    time.sleep(POLL_S)

            thread = threading.Thread(target=pacer)
            thread.start()
            sent = {}
            for n in range(REPORTS):
                sent[n] = time.perf_counter()
                assert b.report("paced", None, n)
                time.sleep(POLL_S * 1.37)  # out of step with the pacer, as a page is
            time.sleep(POLL_S * 2)
            stop.set()
            thread.join()
            waits = [seen[n] - sent[n] for n in sent if n in seen]
            print(f"| {name} ({len(waits)}/{REPORTS} seen) | {_ms(waits).replace(' | ', ' | ')} |")


def per_stream(prefix: str) -> None:
    counted = [0]
    original = redis.Redis.execute_command

    def counting(self, *args, **options):  # type: ignore[no-untyped-def]
        counted[0] += 1
        return original(self, *args, **options)

    redis.Redis.execute_command = counting  # type: ignore[method-assign]
    try:
        from tablestream import create_app

        app = create_app(
            {
                "db": "",
                "synthetic_rows": "100000",
                "redis_url": REDIS,
                "redis_prefix": prefix,
                "streams_per_client": "4",
                "log_level": "warning",
            }
        )
        client = app.test_client()
        counted[0] = 0
        for _ in range(50):
            with client.get("/tables/synthetic.csv?limit=2000") as response:
                assert response.status_code == 200
                response.get_data()
        commands = counted[0] / 50
    finally:
        redis.Redis.execute_command = original  # type: ignore[method-assign]
    print(f"\nRedis commands per stream (a slot-taking CSV stream, no reports): {commands:g}")
    url = "/tables/synthetic.csv?limit=2000"
    with tempfile.TemporaryDirectory() as logs:
        rows = []
        for name, extra in (
            ("without Redis", {}),
            ("with Redis", {"TABLESTREAM_REDIS_URL": REDIS, "TABLESTREAM_REDIS_PREFIX": prefix}),
        ):
            env = {**server_env(100_000), "TABLESTREAM_STREAMS_PER_CLIENT": "4", **extra}
            server = ServerProcess(env, Path(logs) / "s.log")
            try:
                for _ in range(30):  # warm
                    urllib.request.urlopen(server.url + url).read()
                took = _timed(
                    lambda i, s=server: urllib.request.urlopen(s.url + url).read(), STREAMS
                )
            finally:
                server.stop()
            rows.append(f"| {name} | {_ms(took)} |")
        print(f"\n| 2,000-row CSV stream ({STREAMS} in a row) | median | p99 |\n|---|---|---|")
        print("\n".join(rows))


def main() -> int:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    try:
        operations(prefix)
        report_way(prefix)
        per_stream(prefix)
    finally:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
