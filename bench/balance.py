"""Two processes on one port: one shared listening socket against SO_REUSEPORT, same load.

Why it exists: ``tablestream serve --processes N`` lets its children accept from one socket the
parent bound. This measures that choice against the alternative (separate processes, each with
its own SO_REUSEPORT socket): aggregate rows/s under the same wrk load, and how often one of
the two processes sat (nearly) idle while the other had the streams, sampled every 0.5 s.
Rounds alternate the two ways, so both see the same machine. ``python -m bench.balance``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from pathlib import Path

from tablestream.testing import ServerProcess, process_cpu_seconds

from .measure import fetch, steady_load, wire_bytes
from .run import server_env

ROWS = 100_000
IDLE_CORES = 0.3  # a process using less than this in a sample counts as idle
SAMPLE_S = 0.5


def _start(way: str, logs: Path) -> tuple[list[ServerProcess], list[int]]:
    """The servers for one way and the pids of the two processes that serve."""
    tablestream = str(Path(sys.executable).with_name("tablestream"))
    env = server_env(ROWS)
    if way == "shared socket":
        server = ServerProcess(
            {**env, "TABLESTREAM_PROCESSES": "2"}, logs / "s.log", argv=[tablestream, "serve"]
        )
        return [server], server.pids()[1:]
    env["TABLESTREAM_REUSE_PORT"] = "1"
    first = ServerProcess(env, logs / "r.log", argv=[tablestream, "serve"])
    second = ServerProcess(env, logs / "r.log", argv=[tablestream, "serve"], port=first.port)
    return [first, second], [first.proc.pid, second.proc.pid]


def _run(way: str, seconds: int, connections: int, logs: Path) -> tuple[float, float, float]:
    """rows/s, share of samples with an idle process, mean server cores."""
    servers, pids = _start(way, logs)
    try:
        url = f"{servers[0].url}/tables/synthetic?limit={ROWS}"
        fetch(url.replace(str(ROWS), "1000"))
        per_response = wire_bytes(url)
        samples: list[list[float]] = []
        stop = threading.Event()

        def sample() -> None:
            before = [process_cpu_seconds(p) for p in pids]
            while not stop.wait(SAMPLE_S):
                now = [process_cpu_seconds(p) for p in pids]
                samples.append([(b - a) / SAMPLE_S for a, b in zip(before, now, strict=True)])
                before = now

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            load = steady_load(url, connections, seconds)
        finally:
            stop.set()
            sampler.join()
        rows_per_s = load.bytes / per_response * ROWS / load.seconds
        idle = sum(min(s) < IDLE_CORES for s in samples) / len(samples)
        return rows_per_s, idle, statistics.mean(sum(s) for s in samples)
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.balance", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="each run of the load [20]")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections [8]")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="tablestream-balance-"))
    results: dict[str, list[tuple[float, float, float]]] = {}
    for round_ in range(1, args.rounds + 1):
        for way in ("shared socket", "SO_REUSEPORT"):
            rate, idle, cores = _run(way, args.seconds, args.connections, logs)
            results.setdefault(way, []).append((rate, idle, cores))
            print(
                f"round {round_} {way:13s} {rate:>9,.0f} rows/s, a process idle in {idle:4.0%} "
                f"of samples, {cores:.2f} server cores",
                flush=True,
            )
    for way, runs in results.items():
        rates, idles, cores = zip(*runs, strict=True)
        print(
            f"{way:13s} median {statistics.median(rates):,.0f} rows/s, idle samples "
            f"{min(idles):.0%}-{max(idles):.0%}, {statistics.median(cores):.2f} cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
