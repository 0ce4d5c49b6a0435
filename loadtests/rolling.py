"""``make rolling``: replace every instance of a cluster, three rounds, under mixed load; a verdict.

The cluster (loadtests/cluster.py: three hosts, nginx, Prometheus) serves locust in distributed
mode (one master, two workers, loadtests/mixed.py: small pages, 100k-row pages, CSV and NDJSON
downloads, a few 1M- and 5M-row streams). After a warm-up and a baseline without a deploy, each
instance in turn is replaced as a deploy replaces it — SIGTERM, wait for its exit, start the new
one, wait for ``/readyz`` — for ``--rounds`` rounds, with a shutdown grace shorter than the long
streams, while ``tablestream download`` (the installed wheel's) fetches a 5M-row CSV again and
again and each file is compared (SHA-256) with one downloaded before, uninterrupted. From the
start of the load (so that the baseline carries their cost too), page readers
(loadtests/pageresume.py) read 1M-row HTML pages at a browser's pace, following every cut
page's resume points as its script does and checking every id once. Then the load stops
(requests in flight end first), Prometheus' row count over the run is compared with the
clients', the alerts of the run are read, no client lease may be left in Redis, and one instance
is killed and not replaced to see the instance-down alert fire. Before the load and after the
rounds, one client's stream cap and a stream's ``/streams/<id>`` are checked across the
instances through Redis (loadtests/clustershared.py). loadtests/rolling_verdict.py judges;
exit 1 on a miss::

    python -m loadtests.rolling [--rounds 3] [--users 24] [--no-kill-check] [--folder DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tablestream.testing import free_port
from tests.prometheus import poll, query

from .cluster import METRICS_PORT, Cluster, cluster
from .clustershared import leases_held, shared_check
from .clusterwatch import dashboard_series, sums
from .pageresume import PageReaders
from .rolling_verdict import Figures, in_flight, nginx_errors, read_tally, table, verdict

__all__ = ["Plan", "main", "run"]

ROOT = Path(__file__).resolve().parents[1]
_SUMMARY = re.compile(r"download: ([\d,]+) rows, [\d,]+ bytes, resumed (\d+) times")


@dataclass(frozen=True)
class Plan:
    rounds: int = 3
    users: int = 24
    warmup: float = 15.0
    baseline: float = 45.0
    grace: float = 5.0  # the instances' TABLESTREAM_SHUTDOWN_GRACE: shorter than a 5M stream
    # After a new instance is ready, this long before the next is drained: nginx keeps a server
    # that failed max_fails times out for fail_timeout (5 s in the shipped upstream), so without
    # the wait two drains in a row can leave nginx no live server (502). Kubernetes:
    # minReadySeconds.
    settle: float = 6.0
    long_rows: str = "1000000,5000000"
    download_rows: int = 5_000_000
    demo_rows: int = 100_000
    kill_check: bool = True
    down_state: str = "firing"  # what the killed instance's TablestreamDown must reach
    venvs: int = 3
    pages: int = 3  # page readers, one page after another from the load's start to the deploy's end
    page_rows: int = 1_000_000  # 139 MB, ~21 s at a browser's pace: longer than the grace
    page_rate: float = 6_500_000  # bytes a second a reader takes (~47k rows; Chromium ~60k)
    pages_must_cut: bool = True  # no page cut by a drain: the target was not exercised
    client_cap: int = 2  # TABLESTREAM_STREAMS_PER_CLIENT on every instance, shared by Redis


# Each page reader is a client of its own (the per-client cap counts it apart from locust's
# users, which have addresses of their own too: mixed.py --own-addresses); the first one's
# cap is checked before the load and again after the drains cut its pages.
READERS = [f"127.0.1.{i + 1}" for i in range(16)]


class Load:
    """locust: one master and two workers (``--expect-workers 2``), all on this host."""

    def __init__(self, folder: Path, url: str, plan: Plan) -> None:
        self.tally = folder / "tally"
        self.tally.mkdir(parents=True)
        port = free_port()
        common = [
            sys.executable, "-m", "locust", "-f", "loadtests/mixed.py",
            "--tally-dir", str(self.tally), "--demo-rows", str(plan.demo_rows),
            "--long-rows", plan.long_rows, "--own-addresses",
        ]  # fmt: skip
        master = [
            *common, "--master", "--headless", "--expect-workers", "2",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "-u", str(plan.users), "-r", str(max(1, plan.users // 3)), "--host", url,
            "--only-summary", "--csv", str(folder / "locust"),
        ]  # fmt: skip
        worker = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        self.log = (folder / "locust.log").open("ab")
        run = {"cwd": ROOT, "stdout": self.log, "stderr": subprocess.STDOUT}
        self.master = subprocess.Popen(master, **run)
        self.workers = [subprocess.Popen(worker, **run) for _ in range(2)]

    def stop(self, timeout: float = 240.0) -> None:
        """No new request; wait for those in flight to end; then stop master and workers."""
        (self.tally / "STOP").touch()
        deadline = time.monotonic() + timeout
        while in_flight(self.tally) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        self.master.send_signal(signal.SIGTERM)
        for process in [self.master, *self.workers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def _download(tablestream: Path, url: str, out: Path) -> dict:
    done = subprocess.run(
        [tablestream, "download", url, out], capture_output=True, text=True, timeout=600
    )
    found = _SUMMARY.search(done.stderr)
    rows = int(found[1].replace(",", "")) if found else 0
    sha = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else ""
    return {"code": done.returncode, "rows": rows, "resumes": int(found[2]) if found else 0,
            "sha": sha, "stderr": done.stderr[-300:]}  # fmt: skip


class Downloads(threading.Thread):
    """``tablestream download`` of the big CSV, again and again until told to stop."""

    def __init__(self, c: Cluster, rows: int) -> None:
        super().__init__(daemon=True)
        self.tablestream = c.instances[0].venv / "bin" / "tablestream"
        self.url = f"{c.url}/tables/synthetic.csv?limit={rows}"
        self.folder = c.folder
        reference = _download(self.tablestream, self.url, c.folder / "reference.csv")
        if reference["code"] != 0 or reference["resumes"]:
            raise RuntimeError(f"the reference download was not clean: {reference}")
        self.reference = reference["sha"]
        self.results: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            result = _download(self.tablestream, self.url, self.folder / "during.csv")
            result["sha_ok"] = result["code"] == 0 and result["sha"] == self.reference
            self.results.append(result)


def _alerts(api: str, state: str, since: float, until: float) -> list[str]:
    expr = f'max_over_time(ALERTS{{alertstate="{state}"}}[{max(1, int(until - since))}s])'
    return sorted({s["metric"]["alertname"] for s in query(api, expr, at=until)})


def run(folder: Path, plan: Plan, log=print) -> Figures:
    """One rolling deploy under load on a fresh cluster; the figures (judged by the caller)."""
    with cluster(
        folder,
        grace=plan.grace,
        demo_rows=plan.demo_rows,
        venvs=plan.venvs,
        client_cap=plan.client_cap,
    ) as c:
        log(f"rolling: cluster up, hosts {[i.url for i in c.instances]}, nginx {c.url}"
            + (f" (fallback: {c.fallback})" if c.fallback else ""))  # fmt: skip
        shared = [shared_check(c, plan.client_cap, READERS[0])] if plan.client_cap else []
        downloads = Downloads(c, plan.download_rows)
        readers = PageReaders(c.url, plan.page_rows, READERS[: plan.pages], plan.page_rate, folder)
        time.sleep(1.5)  # the reference download's rows scraped: the window starts flat
        started = time.time()
        load = Load(folder, c.url, plan)
        readers.start()
        try:
            time.sleep(plan.warmup)
            baseline = (time.time(), time.time() + plan.baseline)
            time.sleep(plan.baseline)
            log(f"rolling: baseline done; {plan.rounds} rounds of replacing each instance")
            downloads.start()
            deploy_start = time.time()
            replacements = []
            for round_ in range(plan.rounds):
                for instance in c.instances:
                    if replacements:
                        time.sleep(plan.settle)
                    drain, ready = instance.replace()
                    replacements.append((instance.name, drain, ready))
                    log(f"rolling: round {round_ + 1}: {instance.name} drained in {drain:.1f} s, "
                        f"new one ready in {ready:.1f} s")  # fmt: skip
            deploy = (deploy_start, time.time())
            readers.finish()
            downloads.done.set()
            downloads.join(timeout=600)
        finally:
            readers.stop()
            load.stop()
        time.sleep(3)  # the last scrape of every instance
        ended = time.time()
        rows = query(
            c.prometheus,
            f"sum(increase(tablestream_stream_rows_total[{int(ended - started) + 1}s]))",
            at=ended,
        )
        figures = Figures(
            read_tally(load.tally),
            baseline,
            deploy,
            replacements,
            prometheus_rows=float(rows[0]["value"][1]) if rows else 0.0,
            download_rows=sum(d["rows"] for d in downloads.results),
            downloads=downloads.results,
            alerts_during_deploy=_alerts(c.prometheus, "firing", started, ended),
            pending_during_deploy=_alerts(c.prometheus, "pending", started, ended),
            fallback=c.fallback,
            nginx=nginx_errors(c.nginx.error_log.read_text(errors="replace")),
            pages=readers.results,
            pages_must_cut=plan.pages_must_cut,
        )
        figures.sums = sums(c.prometheus, [i.metrics_url for i in c.instances])
        figures.panels = dashboard_series(c.prometheus)
        if plan.client_cap:
            # A give-back that failed is made at the keeper's next tick (every 10 s): a lease
            # still live after that was kept.
            deadline = time.monotonic() + 15
            while (left := leases_held(c)) and time.monotonic() < deadline:
                time.sleep(0.5)
            figures.leases_left = left
            figures.leases_expired = leases_held(c, live=False)
            shared.append(shared_check(c, plan.client_cap, READERS[0]))
            figures.shared = shared
        if plan.kill_check:
            victim = c.instances[-1]
            log(f"rolling: killing {victim.name}, not replaced: TablestreamDown {plan.down_state}?")
            killed = time.monotonic()
            victim.kill()
            expr = f'ALERTS{{alertname="TablestreamDown",alertstate="{plan.down_state}"}}'
            seen = poll(c.prometheus, expr, bool, timeout=180)
            figures.down_alert_checked = plan.down_state
            figures.down_alert_after = time.monotonic() - killed if seen else None
            figures.down_alert_instances = sorted(s["metric"]["instance"] for s in seen)
            figures.down_victim = f"{victim.host.address}:{METRICS_PORT}"
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.rolling", description=__doc__)
    parser.add_argument("--rounds", type=int, default=Plan.rounds)
    parser.add_argument("--users", type=int, default=Plan.users)
    parser.add_argument("--baseline", type=float, default=Plan.baseline, help="seconds")
    parser.add_argument("--grace", type=float, default=Plan.grace, help="shutdown grace, s")
    parser.add_argument("--settle", type=float, default=Plan.settle, help="s after each ready")
    parser.add_argument("--pages", type=int, default=Plan.pages, help="page readers")
    parser.add_argument("--page-rows", type=int, default=Plan.page_rows, help="rows of a page")
    parser.add_argument("--no-kill-check", action="store_true", help="skip the 2-min alert wait")
    parser.add_argument("--folder", help="where everything goes [runs/<UTC time>-rolling]")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(args.folder or ROOT / "runs" / f"{stamp}-rolling").resolve()
    plan = Plan(
        rounds=args.rounds,
        users=args.users,
        baseline=args.baseline,
        grace=args.grace,
        settle=args.settle,
        pages=args.pages,
        page_rows=args.page_rows,
        kill_check=not args.no_kill_check,
    )
    figures = run(folder, plan)
    lines = verdict(figures)
    report = table(figures, lines)
    (folder / "verdict.txt").write_text(report + "\n")
    print(report)
    print(f"rolling: everything in {folder}")
    return 0 if all(line.ok for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
