"""The reliability suite: issue 12's attacks against a real ``tablestream serve``, judged.

Each attack gets its own server process (default settings, 127.0.0.1, a free port, the demo
database) so that one attack's leftovers cannot blame the next, and is bounded in sockets and
seconds. While it runs, ``loadtests.probes`` asks ``/healthz`` every 100 ms and a 10-row page every
second and samples the server's RSS and temp-file disk; afterwards the suite waits (bounded) for
memory to settle. It prints one table row per attack and one verdict per target of the issue;
the exit status is 1 when a target fails::

    python -m loadtests.reliability [--quick] [--label NAME] [--server-root PATH]

A full run also writes its table into ``docs/reliability.md`` (section ``--label``, "current" by
default); ``--write-docs`` does so for a quick run too. ``--server-root`` serves the code of
another checkout (e.g. a worktree at an older commit) to measure a "before".
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtests import attacks, drain
from loadtests.probes import ProbeFigures, Probes, get, percentile
from loadtests.reliability_report import Check, Row, render, verdict_lines, write_docs
from tablestream.config import Settings
from tablestream.sources.demo import create_demo_db
from tablestream.testing import ServerProcess, httpraw, temp_file_bytes
from tablestream.testing.metricsread import value

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["PROFILES", "main"]

HOST = "127.0.0.1"
MIB = 1024 * 1024
RSS_MARGIN = 5 * MIB
HEADER_MARGIN = 2.0  # seconds past the header deadline a slowloris socket may live
REJECT_WITHIN = 0.05
QUEUE_WAIT = 2.0  # a stream request with no status after this long sat in a queue
HEALTH_P99 = 0.1
SMALL_WITHIN = 1.0
STREAM_PATH = "/tables/synthetic?limit={rows}"
REJECTED = "tablestream_streams_rejected"

PROFILES: dict[str, dict[str, float]] = {
    "full": {"stalled": 20, "slowloris": 250, "seconds": 60, "streams": 8, "rows": 2_000_000,
             "drain_streams": 4, "drain_rows": 1_000_000, "settle": 30,
             "flood_one": 5000, "flood_many": 10_000, "flood_addresses": 100,
             "flood_seconds": 60, "flood_rows": 1_000_000},
    "quick": {"stalled": 8, "slowloris": 50, "seconds": 16, "streams": 4, "rows": 300_000,
              "drain_streams": 2, "drain_rows": 500_000, "settle": 15,
              "flood_one": 1000, "flood_many": 2000, "flood_addresses": 20,
              "flood_seconds": 15, "flood_rows": 300_000},
}  # fmt: skip
FLOOD_REOPEN = 100  # openings per flood socket at most (a reset one reconnects at once)
FLOOD_RSS = 640 * MIB  # the most a 10,000-socket flood may add to the server's RSS
FLOOD_STREAM_RATIO = 0.5  # a legitimate stream's rows/s during the flood vs quiet


@dataclass
class Context:
    """What every attack needs: the server under test and the profile."""

    server: ServerProcess
    settings: Settings
    profile: dict[str, float]
    notes: list[str] = field(default_factory=list)
    probes_until: float | None = None  # the probes after this moment are not the attack's


def _rejected(url: str) -> float | None:
    """The 503s counted so far; None when the server has no such metric (or no /metrics)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            declared = REJECTED.encode() in response.read()
        found = value(f"{url}/metrics", REJECTED + "_total")
    except OSError:
        return None
    # A labelled counter shows no sample before its first increment, only its HELP line.
    return found if found is not None else (0.0 if declared else None)


def _wait_idle(
    server: ServerProcess, idle_rss: int, seconds: float, probes: Probes | None = None
) -> int:
    """Wait (bounded) until no stream runs, no temp file is left and RSS is near idle."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probes is not None:
            probes.sample()  # the peak may come after the attack: buffers still filling
        if (
            server.rss() <= idle_rss + RSS_MARGIN
            and temp_file_bytes(server.pid) == 0
            and drain.in_progress(server.url) == 0
        ):
            break
        time.sleep(0.5)
    return server.rss()


def _health_check(figures: ProbeFigures) -> Check:
    """p99 over every probe, an unanswered one counting as infinitely slow."""
    p99 = percentile(figures.latencies("health"), 0.99)
    missing = figures.unanswered("health")
    ok = missing == 0 and p99 is not None and p99 <= HEALTH_P99
    p99_text = "no answer" if p99 is None or math.isinf(p99) else f"{p99 * 1000:.0f} ms"
    return Check("/healthz p99 <= 100 ms, never unanswered", ok,
                 f"p99 {p99_text}, {missing} of {len(figures.health)} unanswered")  # fmt: skip


def stalled_and_slowloris(ctx: Context) -> list[Check]:
    """Target 1: stalled stream readers plus slowloris sockets at the same time."""
    p = ctx.profile
    pool = attacks.AttackPool(HOST, ctx.server.port, int(p["stalled"]), int(p["slowloris"]))
    pool.start()
    time.sleep(p["seconds"])  # the attack's length: the probes and the pool run meanwhile
    stopped = time.monotonic()
    pool.stop()
    deadline = ctx.settings.header_timeout + HEADER_MARGIN
    slow = pool.slowloris_records()
    late = [r for r in slow if (r.closed_by_server or stopped) - r.opened > deadline]
    closed = [r for r in slow if r.closed_by_server]
    longest = max((r.closed_by_server - r.opened for r in closed), default=0.0)
    from_byte = max((r.closed_by_server - (r.first_sent or r.opened) for r in closed), default=0)
    ctx.notes.append(
        f"slowloris: {len(slow)} sockets opened (closed ones reopened), {len(closed)} closed by "
        f"the server, {sum(1 for r in closed if r.answer)} of them with a response first; "
        f"longest {longest:.1f} s from connect ({from_byte:.1f} s from the first byte sent); "
        f"{len(late)} lived past {deadline:.0f} s from connect; {pool.connect_failures} connects "
        "failed"
    )
    return [
        Check(f"every slowloris socket closed by the server within {deadline:.0f} s",
              not late and bool(closed), f"{len(late)} of {len(slow)} outlived it"),
    ]  # fmt: skip


def _flood(ctx: Context, sockets: int, addresses: int) -> attacks.AttackPool:
    """Reconnecting slowloris sockets from ``addresses`` attacker addresses, started."""
    pool = attacks.AttackPool(HOST, ctx.server.port, 0, sockets, sources=addresses,
                              max_reopen=FLOOD_REOPEN)  # fmt: skip
    pool.start()
    return pool


def _flood_notes(ctx: Context, pool: attacks.AttackPool, sockets: int, addresses: int) -> None:
    slow = pool.slowloris_records()
    closed = [r for r in slow if r.closed_by_server]
    ctx.notes.append(
        f"flood: {sockets:,} reconnecting slowloris sockets from {addresses} address(es); "
        f"{len(slow):,} connections opened, {len(closed):,} closed by the server, "
        f"{pool.connect_failures:,} connects failed"
    )


def _stream_rate(url: str, rows: int) -> float:
    """Rows per second of one full-speed read of a ``rows``-row stream (0 if it broke)."""
    started = time.monotonic()
    response = httpraw.get(url + STREAM_PATH.format(rows=rows), keep=False, timeout=120)
    took = time.monotonic() - started
    return rows / took if response.terminated else 0.0


def flood_one_address(ctx: Context) -> list[Check]:
    """Issue 29: thousands of reconnecting slowloris sockets from one attacker address."""
    p = ctx.profile
    sockets = int(p["flood_one"])
    pool = _flood(ctx, sockets, 1)
    time.sleep(p["flood_seconds"])
    pool.stop()
    _flood_notes(ctx, pool, sockets, 1)
    return []


def flood_many_addresses(ctx: Context) -> list[Check]:
    """Issue 29: ten thousand trickling sockets from a hundred addresses, and a real stream."""
    p = ctx.profile
    sockets, addresses, rows = int(p["flood_many"]), int(p["flood_addresses"]), int(p["flood_rows"])
    quiet = _stream_rate(ctx.server.url, rows)
    pool = _flood(ctx, sockets, addresses)
    ends = time.monotonic() + p["flood_seconds"]
    time.sleep(min(5.0, p["flood_seconds"] / 3))  # the sockets are open before the stream
    during = _stream_rate(ctx.server.url, rows)
    time.sleep(max(0.0, ends - time.monotonic()))
    pool.stop()
    _flood_notes(ctx, pool, sockets, addresses)
    ratio = during / quiet if quiet else 0.0
    return [
        Check(f"a {rows:,}-row stream during the flood keeps >= {FLOOD_STREAM_RATIO}x its "
              "quiet rows/s", ratio >= FLOOD_STREAM_RATIO,
              f"{during:,.0f} rows/s vs {quiet:,.0f} quiet ({ratio:.2f}x)"),
    ]  # fmt: skip


def legitimate_streams(ctx: Context) -> list[Check]:
    """Target 2: full-speed readers of long streams (the health check must not wait)."""
    p = ctx.profile
    url = ctx.server.url + STREAM_PATH.format(rows=int(p["rows"]))
    results: list[httpraw.RawResponse | None] = [None] * int(p["streams"])

    def read(i: int) -> None:
        try:
            results[i] = httpraw.get(url, keep=False, timeout=60)
        except OSError:
            results[i] = None

    started = time.monotonic()
    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(results))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=max(1.0, started + 600 - time.monotonic()))
    done = sum(1 for r in results if r is not None and r.terminated)
    ctx.notes.append(
        f"{len(results)} streams of {int(p['rows']):,} rows: {done} complete in "
        f"{time.monotonic() - started:.1f} s"
    )
    return [Check("every stream completed", done == len(results), f"{done} of {len(results)}")]


def over_the_slots(ctx: Context) -> list[Check]:
    """Target 3: more stream requests than slots, none of which reads its body."""
    slots = ctx.settings.effective_stream_slots
    path = STREAM_PATH.format(rows=2_000_000)
    counted_before = _rejected(ctx.server.url) or 0.0
    # From many addresses, as a real burst comes: from one, all past its connection cap
    # (TABLESTREAM_CONNECTIONS_PER_CLIENT, 100) would be reset at accept, probes included.
    replies = attacks.stream_requests(
        HOST, ctx.server.port, path, slots + 6, QUEUE_WAIT, source=attacks.BURST_ADDRESS
    )
    try:
        rejected = [r for r in replies if r.status == 503]
        queued = [r for r in replies if r.status is None]
        late = [r for r in rejected if r.seconds > REJECT_WITHIN]
        bare = [r for r in rejected if "retry-after" not in r.headers]
        times = ", ".join(
            f"{r.seconds * 1000:.0f}" for r in sorted(rejected, key=lambda r: r.seconds)
        )
        counted = (_rejected(ctx.server.url) or 0.0) - counted_before
    finally:
        for reply in replies:
            if reply.sock is not None:
                reply.sock.close()
    ctx.notes.append(
        f"{len(replies)} stream requests for {slots} slots: "
        f"{sum(1 for r in replies if r.status == 200)} x 200, {len(rejected)} x 503 "
        f"(after {times} ms), {len(queued)} without an answer in {QUEUE_WAIT:.0f} s; "
        f"tablestream_streams_rejected_total +{counted:.0f}"
    )
    return [
        Check("the extra requests get 503 + Retry-After within 50 ms",
              len(rejected) >= 6 and not late and not bare,
              f"{len(rejected)} x 503, {len(late)} after more than 50 ms, "
              f"{len(bare)} without Retry-After"),
        Check("none is silently queued", not queued, f"{len(queued)} queued"),
        Check("the metric counts them", bool(rejected) and counted == len(rejected),
              f"metric +{counted:.0f} for {len(rejected)} x 503"),
    ]  # fmt: skip


def expect_continue(ctx: Context) -> list[Check]:
    """Target 5: ``Expect: 100-continue`` on a GET without a body."""
    result = attacks.expect_continue(HOST, ctx.server.port, timeout=3.0)
    ctx.notes.append(
        f"Expect: 100-continue: final status {result.status}, interim {result.interim}, "
        f"{result.seconds * 1000:.0f} ms"
    )
    return [Check("GET /healthz -> 200", result.status == 200, f"status {result.status}")]


def drain_under_load(ctx: Context) -> list[Check]:
    """Target 4: SIGTERM while streams run (this attack ends its server)."""
    p = ctx.profile
    path = STREAM_PATH.format(rows=int(p["drain_rows"]))
    grace = ctx.settings.shutdown_grace
    figures = drain.drain_under_load(
        ctx.server.proc, ctx.server.url, path, int(p["drain_streams"]), grace
    )
    ctx.probes_until = figures.signalled_at  # from then on the port is meant to refuse
    refused = figures.refused_after
    answered = [s for s in figures.readyz if s is not None]
    in_grace = [s for s in figures.finished if s <= grace]
    ctx.notes.append(
        f"SIGTERM: new connection {figures.refused_how or 'not refused'} after "
        f"{_ms_text(refused)}; /readyz on the kept-alive connection: {figures.readyz}; "
        f"{len(in_grace)} of {figures.streams} streams finished within the {grace:.0f} s grace; "
        f"process exited after {_ms_text(figures.exited_after)}"
    )
    return [
        Check("a new connection is refused (or answered 503) within 100 ms",
              refused is not None and refused <= 0.1, f"after {_ms_text(refused)}"),
        Check("/readyz is 503 from the signal on", bool(answered) and set(answered) == {503},
              f"statuses {figures.readyz}"),
        Check("the streams in flight finish within the grace", len(in_grace) == figures.streams,
              f"{len(in_grace)} of {figures.streams}"),
    ]  # fmt: skip


def _ms_text(seconds: float | None) -> str:
    return "never (within the bound)" if seconds is None else f"{seconds * 1000:.0f} ms"


# (table key, attack label, sockets text, function, probes judged)
ATTACKS: list[tuple[str, str, Callable[[dict], str], Callable[[Context], list[Check]], bool]] = [
    ("stalled", "stalled readers + slowloris",
     lambda p: f"{p['stalled']:.0f} + {p['slowloris']:.0f}, {p['seconds']:.0f} s",
     stalled_and_slowloris, True),
    ("streams", "long streams read at full speed",
     lambda p: f"{p['streams']:.0f} x {p['rows'] / 1e6:g}M rows", legitimate_streams, False),
    ("slots", "more stream requests than slots", lambda p: "slots + 6", over_the_slots, False),
    ("drain", "SIGTERM with streams in flight",
     lambda p: f"{p['drain_streams']:.0f} streams", drain_under_load, False),
    ("expect", "Expect: 100-continue GET", lambda p: "1", expect_continue, False),
    ("flood_one", "reconnecting slowloris flood, one address",
     lambda p: f"{p['flood_one']:,.0f} from 1 address, {p['flood_seconds']:.0f} s",
     flood_one_address, True),
    ("flood_many", "trickling flood, many addresses, + a 1M-row stream",
     lambda p: f"{p['flood_many']:,.0f} from {p['flood_addresses']:.0f} addresses, "
               f"{p['flood_seconds']:.0f} s",
     flood_many_addresses, False),
]  # fmt: skip
FLOODS = ("flood_one", "flood_many")


def _ensure_db(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"reliability: building {path} (1,000,000 orders)", flush=True)
        create_demo_db(path, rows=1_000_000)
    return path


def run_attack(key: str, env: dict[str, str], profile: dict, folder: Path, root: Path) -> Row:
    """One attack on a fresh server: warm up, measure idle, attack with probes, settle."""
    _, label, sockets, attack, small_judged = next(a for a in ATTACKS if a[0] == key)
    server = ServerProcess(env, folder / f"server-{key}.log", cwd=root)
    try:
        get(HOST, server.port, "/tables/orders?limit=10", 10)
        httpraw.get(server.url + STREAM_PATH.format(rows=20_000), keep=False)
        idle = _wait_idle(server, server.rss(), 2)
        rejected_before = _rejected(server.url)
        ctx = Context(server, Settings.from_env({**env}), profile)
        probes = Probes(HOST, server.port, server.pid)
        probes.start()
        try:
            checks = attack(ctx)
        finally:
            figures = probes.stop()
        if ctx.probes_until is not None:
            figures = figures.until(ctx.probes_until)
            ctx.notes.append("probes counted until the signal (the port refuses after it)")
        if key in ("stalled", "streams", *FLOODS):
            checks.insert(0, _health_check(figures))
        if small_judged:
            small = figures.small
            late = [p for p in small if p.status != 200 or p.seconds > SMALL_WITHIN]
            checks.insert(1, Check("a 10-row page completes within 1 s every time",
                                   bool(small) and not late,
                                   f"{len(late)} of {len(small)} late or unanswered"))  # fmt: skip
        after = None
        if server.proc.poll() is None:
            after = _wait_idle(server, idle, profile["settle"], probes)
            rejected_after = _rejected(server.url)
        else:
            rejected_after = None
        if key == "flood_many":
            added = figures.rss_peak - idle
            checks.append(
                Check(
                    f"RSS during the flood <= idle + {FLOOD_RSS // MIB} MiB",
                    added <= FLOOD_RSS,
                    f"+{added / MIB:.0f} MiB at the peak",
                )
            )
        if key in ("stalled", *FLOODS):
            back = after is not None and after <= idle + RSS_MARGIN
            measured = f"idle {idle / MIB:.1f} MiB, after {(after or 0) / MIB:.1f} MiB"
            checks.append(Check("RSS back within 5 MiB of idle afterwards", back, measured))
        rejected = None
        if rejected_before is not None and rejected_after is not None:
            rejected = rejected_after - rejected_before
        return Row(key, label, sockets(profile), figures, rejected, idle, after, checks, ctx.notes)
    finally:
        server.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.reliability", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer sockets, shorter attacks")
    parser.add_argument("--only", action="append", choices=[a[0] for a in ATTACKS],
                        help="run only this attack (repeatable)")  # fmt: skip
    parser.add_argument("--db", default="data/demo.sqlite3", help="demo SQLite file [built]")
    parser.add_argument("--server-root", default=str(ROOT), help="checkout whose code serves")
    parser.add_argument("--label", default="current", help="docs section the table goes to")
    parser.add_argument("--describe", help="what code served, for the docs [git commit]")
    parser.add_argument("--write-docs", action="store_true", help="write docs on a quick run too")
    parser.add_argument("--runs", default="runs", help="folder for the server logs")
    return parser


def _describe(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "service") else ""
    return f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}"


def _raise_open_files() -> None:
    """The flood needs ten thousand sockets on this side too: soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _raise_open_files()
    profile = PROFILES["quick" if args.quick else "full"]
    root = Path(args.server_root).resolve()
    db = _ensure_db((ROOT / args.db).resolve())
    env = {"TABLESTREAM_DB": str(db)}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = (ROOT / args.runs / f"{stamp}-reliability").resolve()
    folder.mkdir(parents=True)
    rows = []
    for key, label, *_ in ATTACKS:
        if args.only and key not in args.only:
            continue
        print(f"reliability: {label} ...", flush=True)
        rows.append(run_attack(key, env, profile, folder, root))
    table = render(rows)
    verdicts = verdict_lines(rows)
    failed = not all(row.passed for row in rows)
    print("\n" + table + "\n" + "\n".join(verdicts))
    print(f"\nreliability: {'FAIL' if failed else 'PASS'}; server logs in {folder}")
    if args.write_docs or not (args.quick or args.only):
        heading = (
            f"### {args.label}: {args.describe or _describe(root)}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} run"
        )
        body = table + "\n" + "\n".join(verdicts) + "\n"
        write_docs(ROOT / "docs" / "reliability.md", args.label, heading, body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
