"""tablestream under load: streams of growing size, slow and impatient clients, and browsers.

Run from the repository root (locust puts the working directory on ``sys.path``, which is how
``loadtests.*`` is found), usually through ``make loadtest`` / ``make loadtest-smoke``::

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --row-steps 1000,10000,100000,1000000 --step-seconds 60 --step-users 6

Users: ``FullReader`` (weight 3) reads whole pages; ``SlowReader`` (1) sleeps between chunks;
``Disconnector`` (1) hangs up after a random part; ``Browser`` (1) opens ``/`` and a small
table. ``RowSteps`` sets the users and the rows per stream; the memory watcher samples the
server's ``/metrics``; at the end the verdict is printed, written with the plot to the report
folder, and exit code 3 marks a failed verdict (locust's own 1 still marks failed requests).
"""

from __future__ import annotations

import logging
import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import requests
from locust import HttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner

from loadtests import steps
from loadtests.memwatch import MemoryWatcher
from loadtests.pagecount import PageCount
from loadtests.report import write_report
from loadtests.steps import RowSteps
from loadtests.verdict import Sample, Thresholds, judge

__all__ = ["Browser", "Disconnector", "FullReader", "RowSteps", "SlowReader"]

log = logging.getLogger("loadtests")
VERDICT_FAILED = 3
READ_BYTES = 64 * 1024
_TABLE_LINK = re.compile(r'href="/tables/([^"?/]+)"')


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("tablestream load steps, memory verdict and report")
    group.add_argument(
        "--row-steps",
        default="1000,10000,100000,1000000",
        help="rows per stream of each step, comma-separated",
    )
    group.add_argument(
        "--step-seconds",
        default="60",
        help="how long each step runs: one value for all, or one per step",
    )
    group.add_argument(
        "--step-users",
        type=int,
        default=6,
        help="concurrent users during every step (--users is ignored)",
    )
    group.add_argument("--table", default="synthetic", help="table the readers stream")
    group.add_argument(
        "--slow-read-seconds",
        type=float,
        default=5.0,
        help="seconds a slow reader sleeps between chunks per stream (bounded)",
    )
    group.add_argument(
        "--metrics-url", default="", help="server /metrics to sample memory from [HOST/metrics]"
    )
    group.add_argument("--sample-seconds", type=float, default=1.0, help="memory sample interval")
    group.add_argument(
        "--max-step-growth-mib",
        type=float,
        default=Thresholds.max_step_growth_mib,
        help="verdict: largest growth of peak memory from one step to the next",
    )
    group.add_argument(
        "--max-slope-mib-per-min",
        type=float,
        default=Thresholds.max_slope_mib_per_min,
        help="verdict: largest memory slope over time within steps",
    )
    group.add_argument(
        "--settle-seconds",
        type=float,
        default=Thresholds.settle_seconds,
        help="verdict: start of each step left out of the slope fit",
    )
    group.add_argument(
        "--report-dir",
        default="",
        help="folder for memory.csv, verdict.txt, memory.png [runs/<UTC time>]",
    )


class _TableReader(HttpUser):
    """Streams a page without holding it, and reports what really arrived."""

    abstract = True
    wait_time = between(0.1, 0.5)

    def stream(
        self,
        table: str,
        rows: int,
        name: str,
        hang_up_after: int | None = None,
        pause_budget: float = 0.0,
        exact: bool = True,
    ) -> None:
        """GET ``rows`` rows of ``table``; a success only with the footer, or on hanging up.

        ``response_length`` and ``response_time`` are replaced by the bytes counted and the
        time to the last byte (locust's are 0 for chunked bodies and the time to the headers).
        """
        page = PageCount()
        started = time.perf_counter()
        url = f"/tables/{table}?limit={rows}"
        with self.client.get(url, name=name, stream=True, catch_response=True) as response:
            try:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    return
                slept = 0.0
                for chunk in response.iter_content(READ_BYTES):
                    page.feed(chunk)
                    if hang_up_after is not None and page.rows >= hang_up_after:
                        response.close()
                        response.success()
                        return
                    if slept < pause_budget:
                        nap = random.uniform(0.05, 0.25)
                        gevent.sleep(nap)
                        slept += nap
            except (requests.RequestException, OSError) as exc:
                response.failure(f"stream broke after {page.rows} rows, {page.bytes} bytes: {exc}")
                return
            finally:
                response.request_meta["response_length"] = page.bytes
                response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            problem = page.problem(rows, exact)
            if problem:
                response.failure(problem)
            else:
                response.success()


class FullReader(_TableReader):
    """Downloads whole pages of the current step, like a script saving a table."""

    weight = 3

    @task
    def read_table(self) -> None:
        rows = steps.current_rows()
        self.stream(self.environment.parsed_options.table, rows, f"full {rows:,} rows")


class SlowReader(_TableReader):
    """Reads a chunk, sleeps; after ``--slow-read-seconds`` of sleeping reads the rest at once."""

    weight = 1

    @task
    def read_slowly(self) -> None:
        rows = steps.current_rows()
        options = self.environment.parsed_options
        self.stream(
            options.table, rows, f"slow {rows:,} rows", pause_budget=options.slow_read_seconds
        )


class Disconnector(_TableReader):
    """Hangs up after a random number of rows: the server must close the source and move on."""

    weight = 1

    @task
    def hang_up(self) -> None:
        rows = steps.current_rows()
        after = random.randint(1, max(1, rows - 1))
        self.stream(
            self.environment.parsed_options.table,
            rows,
            f"hang up in {rows:,} rows",
            hang_up_after=after,
        )


class Browser(_TableReader):
    """Opens the index, then a small page of one of the tables listed there."""

    weight = 1
    wait_time = between(1, 3)

    @task
    def browse(self) -> None:
        with self.client.get("/", name="/", catch_response=True) as response:
            tables = _TABLE_LINK.findall(response.text) if response.status_code == 200 else []
            if not tables:
                response.failure(f"HTTP {response.status_code}, no table links on the index")
                return
        # A listed table may be shorter than the limit: fewer rows are fine if the footer agrees.
        limit = random.randint(10, 200)
        self.stream(random.choice(tables), limit, "browse small table", exact=False)


@events.init.add_listener
def _init(environment: Any, **kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    try:
        steps.parse_plan(options.row_steps, options.step_seconds)
    except ValueError as exc:
        raise SystemExit(f"loadtests: {exc}") from None  # before any user starts
    if not isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(steps.ROWS_MESSAGE, steps.receive_rows)
    if isinstance(environment.runner, WorkerRunner):
        return
    host = (environment.host or options.host or "").rstrip("/")
    environment.tablestream_watcher = MemoryWatcher(
        metrics_url=options.metrics_url or f"{host}/metrics",
        interval=options.sample_seconds,
        rows_now=lambda: environment.shape_class.rows if environment.shape_class else None,
        users_now=lambda: environment.runner.user_count,
    )


@events.test_start.add_listener
def _start_watching(environment: Any, **kwargs: Any) -> None:
    if watcher := getattr(environment, "tablestream_watcher", None):
        watcher.start()


@events.test_stop.add_listener
def _stop_watching(environment: Any, **kwargs: Any) -> None:
    if watcher := getattr(environment, "tablestream_watcher", None):
        watcher.stop()


@events.quitting.add_listener
def _verdict(environment: Any, **kwargs: Any) -> None:
    watcher = getattr(environment, "tablestream_watcher", None)
    if watcher is None:
        return
    watcher.stop()
    options = environment.parsed_options
    thresholds = Thresholds(
        options.max_step_growth_mib, options.max_slope_mib_per_min, options.settle_seconds
    )
    verdict = judge([Sample(s.seconds, s.rows, s.rss_total) for s in watcher.samples], thresholds)
    if watcher.errors:
        verdict.reasons.append(f"{watcher.errors} memory samples failed: {watcher.last_error}")
        verdict.passed = False
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(options.report_dir or f"runs/{stamp}")
    png = write_report(folder, watcher.samples, verdict)
    for line in verdict.lines():
        log.info(line)
    log.info("report: %s (plot %s)", folder, png)
    if not verdict.passed:
        environment.process_exit_code = VERDICT_FAILED
