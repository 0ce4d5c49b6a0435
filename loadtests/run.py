"""Start the service, run the load scenarios headless against it, stop everything.

``make loadtest`` (the full run) and ``make loadtest-smoke`` (under 90 s, part of ``make
test``) call this; so can anyone::

    python -m loadtests.run [--smoke] [--url URL] [--row-steps ...] [-- LOCUST ARGS]

Without ``--url`` it builds the demo database if missing and starts ``tablestream serve`` on
127.0.0.1 and a free port (other ``TABLESTREAM_*`` variables in the environment still apply,
e.g. ``TABLESTREAM_PROCESSES=2``). With ``--url`` it loads that server instead and starts
nothing. Everything lands in one folder under ``runs/``; the verdict is printed last and the
exit status is locust's: 0 pass, 1 failed requests, 3 memory verdict failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from loadtests.steps import parse_plan
from tablestream.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["main"]

PROFILES: dict[str, dict] = {
    # The top step streams 1M rows to several users at once; it runs long enough for each
    # full reader to finish a page (one 1M-row page alone takes ~30 s on a 2-core machine).
    "full": {
        "row_steps": "1000,10000,100000,1000000",
        "step_seconds": "30,30,60,180",
        "users": 6,
        "locust": [],
    },
    # Short steps: memory is sampled twice a second, and the top step is the longest with a
    # longer settle, because its buffers are still filling for ~15 s after it starts.
    "smoke": {
        "row_steps": "1000,10000,100000",
        "step_seconds": "5,15,40",
        "users": 6,
        "locust": ["--sample-seconds", "0.5", "--settle-seconds", "15"],
    },
}
DEMO_ROWS = 100_000  # the readers stream the synthetic table; browsers only open small pages
GRACE_SECONDS = 120  # start-up, spawning and the report, on top of the steps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--smoke", action="store_true", help="the short profile (< 90 s)")
    parser.add_argument("--url", help="load this running server instead of starting one")
    parser.add_argument("--row-steps", help="rows per stream per step [profile]")
    parser.add_argument("--step-seconds", help="seconds per step, one or one per step [profile]")
    parser.add_argument("--step-users", type=int, help="concurrent users [profile]")
    parser.add_argument("--db", default="data/loadtest.sqlite3", help="demo SQLite file")
    parser.add_argument("--runs", default="runs", help="folder that gets one folder per run")
    parser.add_argument("locust_args", nargs="*", help="after --: passed on to locust")
    return parser


def _start_server(db: Path, folder: Path) -> ServerProcess:
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "tablestream", "demo-db", str(db), "--rows", str(DEMO_ROWS)],
            cwd=ROOT,
            check=True,
        )
    return ServerProcess({"TABLESTREAM_DB": str(db)}, folder / "server.log")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "full"]
    row_steps = args.row_steps or profile["row_steps"]
    step_seconds = args.step_seconds or profile["step_seconds"]
    users = args.step_users or profile["users"]
    try:
        plan = parse_plan(row_steps, step_seconds)
    except ValueError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = (ROOT / args.runs / f"{stamp}-{'smoke' if args.smoke else 'full'}").resolve()
    folder.mkdir(parents=True)
    server = None if args.url else _start_server(ROOT / args.db, folder)
    url = args.url or server.url
    command = [
        sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
        "--host", url, "--only-summary",
        "--csv", str(folder / "locust"), "--html", str(folder / "locust.html"),
        "--row-steps", row_steps, "--step-seconds", step_seconds, "--step-users", str(users),
        "--report-dir", str(folder), *profile["locust"], *args.locust_args,
    ]  # fmt: skip
    limit = sum(seconds for _, seconds in plan) + GRACE_SECONDS
    print(f"loadtest: {url}, steps {row_steps} rows for {step_seconds} s, {users} users; "
          f"report in {folder}", flush=True)  # fmt: skip
    try:
        locust = subprocess.Popen(command, cwd=ROOT)
        try:
            code = locust.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            locust.kill()
            locust.wait()
            print(f"loadtest: locust still running after {limit:.0f} s; killed", file=sys.stderr)
            code = 124
    finally:
        if server is not None:
            server.stop()
    verdict = folder / "verdict.txt"
    print(verdict.read_text() if verdict.exists() else "loadtest: no verdict was written")
    print(f"loadtest: report {folder} (memory.png, memory.csv, locust_stats.csv); exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
