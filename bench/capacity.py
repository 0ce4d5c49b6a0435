"""``python -m bench.capacity``: how many slow readers one process serves (issue 30's targets).

Every other figure of the bench is for one fast reader; production readers are slow and many (a
browser at 1-2 MB/s, a phone at 200 kB/s). Here N readers each hold a fixed rate through a real
socket (``recv_into`` a fixed buffer, then sleep until the rate allows more), bound to distinct
source addresses 127.0.2.x, a few per address as real clients behind NATs are, so per-address
caps apply as in production. Meanwhile ``/healthz`` is probed every 100 ms and a 10-row page
fetched every second from 127.0.0.1. One ``tablestream serve`` with default settings per rate
(``tablestream.testing.ServerProcess``); per N it prints accepted vs refused, each reader's
achieved rate, aggregate MB/s, server CPU, RSS, threads and probe latencies, then one verdict
line per target. Exit status 1 when a target is missed: red is a finding, not a bug here.

The readers are threads of this process: the client's own CPU is printed too, since it shares
the machine with the server it measures.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tablestream.testing import ServerProcess

from .capacity_plot import plot
from .readers import Reader, read_all, read_at_rate

__all__ = ["FULL", "QUICK", "Plan", "Run", "main", "table_lines", "verdicts"]

MB = 1_000_000
MIB = 1 << 20
# Defaults, as an operator starts it; only the demo database is left out (the synthetic table
# is what the readers read, so no file has to be made first).
SERVER_ENV = {"TABLESTREAM_DB": ""}
SMALL_PAGE = "/tables/synthetic?limit=10"  # needs no slot: the fast lane of admission.py


@dataclass(frozen=True)
class Plan:
    ns: tuple[int, ...]
    rates: tuple[int, ...]  # bytes per second per reader
    rows: int  # rows of the page each reader asks for (it reads a window of it)
    seconds: float  # how long each reader reads
    per_address: int = 4  # readers per source address 127.0.2.x


FULL = Plan(ns=(8, 32, 128, 256, 512), rates=(2 * MB, 200_000), rows=1_000_000, seconds=15)
QUICK = Plan(ns=(8, 32), rates=(2 * MB,), rows=100_000, seconds=6)


@dataclass
class Run:
    """One N at one rate: what the readers got and what the server spent."""

    n: int
    rate: int
    seconds: float
    readers: list[Reader]
    server_cpu: float  # CPU seconds the server used during the window
    client_cpu: float  # CPU seconds this process used (readers and probes)
    idle_rss: int
    peak_rss: int
    after_rss: int
    threads: int  # the most the server ran at once
    healthz: list[float] = field(default_factory=list)  # seconds per probe
    small: list[float] = field(default_factory=list)  # seconds per 10-row page

    @property
    def accepted(self) -> list[Reader]:
        return [r for r in self.readers if r.status == 200]

    @property
    def refused(self) -> list[Reader]:
        return [r for r in self.readers if r.status == 503]

    def ratios(self) -> list[float]:
        """Each accepted reader's achieved rate over its target."""
        return sorted(r.rate / self.rate for r in self.accepted)

    @property
    def aggregate(self) -> float:
        return sum(r.bytes for r in self.accepted) / self.seconds

    @property
    def cpu_per_byte(self) -> float:
        total = sum(r.bytes for r in self.accepted)
        return self.server_cpu / total if total else float("inf")

    @property
    def rss_per_stream(self) -> float:
        return (self.peak_rss - self.idle_rss) / max(1, len(self.accepted))


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def _timed_get(port: int, path: str) -> float:
    """Seconds for one GET from 127.0.0.1 (a probe); 5 s when it fails or times out."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return time.monotonic() - started if response.status == 200 else 5.0
    except OSError:
        return 5.0
    finally:
        connection.close()


def _every(interval: float, stop: threading.Event, action) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            action()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def measure(server: ServerProcess, n: int, rate: int, plan: Plan) -> Run:
    """N readers at ``rate`` for ``plan.seconds``, probes throughout; the server settled after."""
    server.settle(1.0)
    idle = server.rss()
    server.reset_peak()
    path = f"/tables/synthetic?limit={plan.rows}"
    results: list[Reader | None] = [None] * n
    healthz: list[float] = []
    small: list[float] = []
    most_threads = [_threads(server.pid)]
    stop = threading.Event()
    watchers = [
        _every(0.1, stop, lambda: healthz.append(_timed_get(server.port, "/healthz"))),
        _every(1.0, stop, lambda: small.append(_timed_get(server.port, SMALL_PAGE))),
        _every(0.25, stop, lambda: most_threads.append(_threads(server.pid))),
    ]

    def reader(i: int) -> None:
        source = f"127.0.2.{1 + i // plan.per_address}"
        results[i] = read_at_rate("127.0.0.1", server.port, path, rate, plan.seconds, source=source)

    cpu0, client0 = server.cpu_seconds(), time.process_time()
    threading.stack_size(256 * 1024)
    try:
        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n)]
    finally:
        threading.stack_size(0)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(plan.seconds + 60)
    cpu1, client1 = server.cpu_seconds(), time.process_time()
    stop.set()
    for watcher in watchers:
        watcher.join(10)
    peak = server.peak()
    _settle(server, idle)
    return Run(
        n=n,
        rate=rate,
        seconds=plan.seconds,
        readers=[r for r in results if r is not None],
        server_cpu=cpu1 - cpu0,
        client_cpu=client1 - client0,
        idle_rss=idle,
        peak_rss=peak,
        after_rss=server.rss(),
        threads=max(most_threads),
        healthz=healthz,
        small=small,
    )


def _settle(server: ServerProcess, idle: int, most: float = 12.0) -> None:
    """Wait until RSS is back near ``idle``, at most ``most`` s (idle threads end after 3 s)."""
    deadline = time.monotonic() + most
    server.settle(2.0)
    while time.monotonic() < deadline and server.rss() > idle + 5 * MIB:
        time.sleep(0.5)


def fast_cpu_per_byte(server: ServerProcess, rows: int) -> float:
    """Server CPU seconds per byte of one reader reading the same page as fast as it can."""
    cpu0 = server.cpu_seconds()
    got = read_all("127.0.0.1", server.port, f"/tables/synthetic?limit={rows}")
    return (server.cpu_seconds() - cpu0) / max(1, got)


# --- verdicts -------------------------------------------------------------------------------

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


def _find(runs: Sequence[Run], n: int, rate: int) -> Run | None:
    return next((r for r in runs if r.n == n and r.rate == rate), None)


def _all_at_rate(run: Run | None, what: str) -> tuple[str, str]:
    if run is None:
        return SKIP, f"{what}: not measured in this run"
    ratios = run.ratios()
    low = ratios[0] if ratios else 0.0
    ok = len(run.accepted) == run.n and low >= 0.9
    return (
        PASS if ok else FAIL,
        f"{what}: {len(run.accepted)}/{run.n} accepted, slowest reader at {low:.2f}x its rate "
        "(target: all accepted, each >= 0.9x)",
    )


def verdicts(runs: Sequence[Run], fast_cpu: float | None) -> list[tuple[str, str]]:
    """One (PASS/FAIL/SKIP, line) per target of issue 30's "Targets" the runs can judge."""
    lines = [
        _all_at_rate(_find(runs, 32, 2 * MB), "32 readers at 2 MB/s"),
        _all_at_rate(_find(runs, 256, 200_000), "256 readers at 200 kB/s"),
    ]
    for n, rate, label in ((128, 2 * MB, "128 x 2 MB/s"), (512, 200_000, "512 x 200 kB/s")):
        run, base = _find(runs, n, rate), _find(runs, 8, rate)
        if run is None or base is None:
            lines.append((SKIP, f"overload {label}: not measured (with its 8-reader base)"))
            continue
        keep = run.aggregate / base.aggregate if base.aggregate else 0.0
        ratios = run.ratios()
        spread = ratios[-1] / ratios[0] if ratios and ratios[0] > 0 else float("inf")
        slow_refusals = [r for r in run.refused if r.first_byte > 0.05 or not r.retry_after]
        lines += [
            (
                PASS if keep >= 0.8 else FAIL,
                f"overload {label}: aggregate {keep:.2f}x the 8-reader aggregate (target >= 0.8x)",
            ),
            (
                PASS if spread <= 1.5 else FAIL,
                f"overload {label}: fastest/slowest accepted reader {spread:.2f}x (target <= 1.5x)",
            ),
            (
                PASS if not slow_refusals else FAIL,
                f"overload {label}: {len(slow_refusals)} of {len(run.refused)} refusals without "
                "Retry-After or slower than 50 ms (target 0)",
            ),
        ]
    judged = _find(runs, 32, 2 * MB) or (runs[0] if runs else None)
    if judged is None or fast_cpu is None:
        lines.append((SKIP, "slow reader CPU per byte: not measured"))
    else:
        cost = judged.cpu_per_byte / fast_cpu if fast_cpu else float("inf")
        lines.append(
            (
                PASS if cost <= 1.5 else FAIL,
                f"slow reader CPU per byte ({judged.n} x {judged.rate / MB:g} MB/s): {cost:.2f}x "
                "a fast reader's (target <= 1.5x)",
            )
        )
    if runs:
        healthz = max(_quantile(r.healthz, 0.99) for r in runs)
        small = max(_quantile(r.small, 0.99) for r in runs)
        per_stream = max(r.rss_per_stream for r in runs)
        after = max(r.after_rss - r.idle_rss for r in runs)
        lines += [
            (
                PASS if healthz <= 0.1 else FAIL,
                f"/healthz p99, worst run: {healthz * 1000:.0f} ms (target <= 100 ms)",
            ),
            (
                PASS if small <= 1.0 else FAIL,
                f"10-row page p99, worst run: {small * 1000:.0f} ms (target <= 1000 ms)",
            ),
            (
                PASS if per_stream <= MIB else FAIL,
                f"RSS per open stream, worst run: {per_stream / MIB:.2f} MiB (target <= 1 MiB)",
            ),
            (
                PASS if after <= 5 * MIB else FAIL,
                f"RSS after, worst run: {after / MIB:+.1f} MiB of idle (target within 5 MiB)",
            ),
        ]
    return lines


# --- report ---------------------------------------------------------------------------------


def table_lines(runs: Sequence[Run]) -> list[str]:
    """The figures as a Markdown table, one row per (rate, N)."""
    lines = [
        "| rate/reader | N | accepted | refused | achieved min / median / max | aggregate MB/s "
        "| server CPU % | client CPU % | RSS peak MiB | RSS/stream MiB | threads "
        "| /healthz p50 / p99 / max ms | 10-row page p99 ms | slowest 503 ms |",
        "|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for run in runs:
        ratios = run.ratios() or [0.0]
        rate = f"{run.rate / MB:g} MB/s" if run.rate >= MB else f"{run.rate / 1000:g} kB/s"
        hz = [_quantile(run.healthz, q) * 1000 for q in (0.5, 0.99, 1.0)]
        refused = [r.first_byte for r in run.refused]
        refusal = f"{max(refused) * 1000:.0f}" if refused else "-"
        lines.append(
            f"| {rate} | {run.n} | {len(run.accepted)} | {len(run.refused)} "
            f"| {ratios[0]:.2f}x / {statistics.median(ratios):.2f}x / {ratios[-1]:.2f}x "
            f"| {run.aggregate / MB:.1f} | {run.server_cpu / run.seconds * 100:.0f} "
            f"| {run.client_cpu / run.seconds * 100:.0f} | {run.peak_rss / MIB:.0f} "
            f"| {run.rss_per_stream / MIB:.2f} | {run.threads} "
            f"| {hz[0]:.0f} / {hz[1]:.0f} / {hz[2]:.0f} | {_quantile(run.small, 0.99) * 1000:.0f} "
            f"| {refusal} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="N = 8, 32 at 2 MB/s, 100k rows")
    parser.add_argument("--n", type=int, nargs="+", help="reader counts [8 32 128 256 512]")
    parser.add_argument("--rate", type=int, nargs="+", help="bytes/s per reader [2e6 2e5]")
    parser.add_argument("--rows", type=int, help="rows of each reader's page")
    parser.add_argument("--seconds", type=float, help="how long each reader reads")
    parser.add_argument("--plot", type=Path, help="write the curve (PNG) to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        ns=tuple(args.n or plan.ns),
        rates=tuple(args.rate or plan.rates),
        rows=args.rows or plan.rows,
        seconds=args.seconds or plan.seconds,
        per_address=plan.per_address,
    )
    logs = Path(tempfile.mkdtemp(prefix="tablestream-capacity-"))
    print(f"capacity benchmark {plan}; server logs in {logs}", flush=True)
    runs: list[Run] = []
    fast: float | None = None
    for rate in plan.rates:
        server = ServerProcess(SERVER_ENV, logs / f"server-{rate}.log")
        try:
            if fast is None:
                fast = fast_cpu_per_byte(server, plan.rows)
            for n in plan.ns:
                print(f"  {n} readers at {rate / 1000:g} kB/s ...", flush=True)
                runs.append(measure(server, n, rate, plan))
        finally:
            server.stop()
    print()
    print("\n".join(table_lines(runs)))
    if args.plot:
        plot(runs, args.plot, _quantile)
        print(f"\ncurve written to {args.plot}")
    lines = verdicts(runs, fast)
    print()
    for status, text in lines:
        print(f"{status}  {text}")
    return 1 if any(status == FAIL for status, _ in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
