"""Mixed traffic for a cluster, every request's ending written down at the client.

``make rolling`` (loadtests/rolling.py) runs this in locust's distributed mode (one master, two
workers) through nginx while instances are replaced, and judges from what the clients saw, not
from what the servers say. So each request is one JSON line in ``--tally-dir`` (one file per
worker process): when it started and ended, its kind, its HTTP status, how its body ended —

- ``footer``: an HTML page's success footer, with the footer's count equal to the rows counted;
- ``complete``: a CSV or NDJSON body that ended with its terminating chunk, every row there;
- ``marker``: the stream was cut and said so (the format's error marker, after whole rows);
  ``resume`` tells whether the marker carried a resume point;
- ``neither``: the body ended (or broke) with no success end and no marker — a silent cut;

and the rows received against the rows asked for. A ``start`` line is written before each
request, so the runner can wait for the requests in flight to end before it stops locust (a
stopped user's request would be counted by the servers and not here). Nothing new starts once
the file ``STOP`` exists in the tally folder. With ``--own-addresses`` each user connects from
an address of its own (127.x.y.z, so only to a front on this host's loopback): the cluster's
per-client stream cap counts the users apart, as it counts real users.

Kinds: ``small`` (a 50-row page of the SQLite or the PostgreSQL table, or the index),
``page100k`` (a 100,000-row HTML page), ``csv`` / ``ndjson`` (100,000-row downloads), ``long``
(1M- and 5M-row CSV and NDJSON streams, two users at most).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
from pathlib import Path
from typing import Any

import gevent
import requests
from locust import HttpUser, between, events, task
from locust.clients import LocustHttpAdapter
from locust.runners import MasterRunner
from urllib3 import PoolManager

from loadtests.pagecount import PageCount

__all__ = ["Downloads", "LongStreams", "Pages", "SmallPages"]

READ_BYTES = 64 * 1024
_TAIL = 4096
_CSV_MARKER = re.compile(rb"\r\n# tablestream:error after \d+ rows[^\r\n]*\r\n\Z")
_NDJSON_MARKER = re.compile(rb'\n\{"tablestream_error": [^\n]*\}\n\Z')
_HTML_MARKER = b"<!-- tablestream:error after"
_tally: Any = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("tablestream mixed cluster traffic")
    group.add_argument("--tally-dir", default="", help="folder for one JSON line per request")
    group.add_argument("--demo-rows", type=int, default=100_000, help="rows of pg_orders")
    group.add_argument(
        "--long-rows", default="1000000,5000000", help="rows of the long streams, comma-separated"
    )
    group.add_argument(
        "--own-addresses", action="store_true", help="each user connects from its own 127.x.y.z"
    )


@events.init.add_listener
def _open_tally(environment: Any, **kwargs: Any) -> None:
    global _tally
    options = environment.parsed_options
    if options is None or not options.tally_dir or isinstance(environment.runner, MasterRunner):
        return
    folder = Path(options.tally_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _tally = (folder / f"{socket.gethostname()}-{os.getpid()}.jsonl").open("a", buffering=1)


def _write(record: dict) -> None:
    if _tally is not None:
        _tally.write(json.dumps(record) + "\n")


def _stopping(environment: Any) -> bool:
    options = environment.parsed_options
    return bool(options.tally_dir) and (Path(options.tally_dir) / "STOP").exists()


class _Reader(HttpUser):
    abstract = True
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        if self.environment.parsed_options.own_addresses:
            octets = (random.randint(2, 254), random.randint(0, 255), random.randint(1, 254))
            pool = PoolManager(source_address=("127.{}.{}.{}".format(*octets), 0))
            self.client.mount("http://", LocustHttpAdapter(pool_manager=pool))

    def fetch(self, url: str, kind: str, fmt: str, expected: int | None) -> None:
        """GET ``url`` as a stream; one tally line and one locust success or failure."""
        if _stopping(self.environment):
            gevent.sleep(1)
            return
        record: dict[str, Any] = {"kind": kind, "url": url, "t0": time.time()}
        _write({"ev": "start", "t0": record["t0"]})
        record.update(status=0, end="", rows=0, expected=expected, resume=None, error="")
        page = PageCount()
        lines = 0
        tail = b""
        broke = ""
        with self.client.get(url, name=kind, stream=True, catch_response=True) as response:
            try:
                record["status"] = response.status_code
                if response.status_code == 200:
                    try:
                        for chunk in response.iter_content(READ_BYTES):
                            if fmt == "html":
                                page.feed(chunk)
                            else:
                                lines += chunk.count(b"\n")
                            tail = (tail + chunk)[-_TAIL:]
                    except (requests.RequestException, OSError) as exc:
                        broke = f"{type(exc).__name__}: {exc}"
                    record.update(_ending(fmt, page, lines, tail, broke, expected))
                    record["error"] = broke
            finally:
                record["t1"] = time.time()
                response.request_meta["response_time"] = (record["t1"] - record["t0"]) * 1000
                _write({"ev": "end", **record})
            if record["status"] != 200:
                response.failure(f"HTTP {record['status']}")
            elif record["end"] == "neither":
                response.failure(f"no success end and no marker after {record['rows']} rows")
            else:
                response.success()


def _ending(fmt: str, page: PageCount, lines: int, tail: bytes, broke: str, expected: int | None):
    """(end, rows, resume) of a body that has ended, from its counts and its last bytes."""
    if fmt == "html":
        if not broke and page.problem(expected or 0, exact=expected is not None) is None:
            return {"end": "footer", "rows": page.rows}
        if _HTML_MARKER in tail:
            resume = re.search(rb'data-resume="([^"]*)"', tail)
            return {"end": "marker", "rows": page.rows, "resume": bool(resume and resume[1])}
        return {"end": "neither", "rows": page.rows}
    if fmt == "index":  # no table rows, only whether it arrived whole
        return {"end": "complete" if not broke else "neither", "rows": 0}
    header = 1 if fmt == "csv" else 0  # a marker is a blank line and its own line
    marker = (_CSV_MARKER if fmt == "csv" else _NDJSON_MARKER).search(tail)
    if marker:
        has_resume = b"; resume: " in marker[0] if fmt == "csv" else b'"resume": "' in marker[0]
        return {"end": "marker", "rows": lines - header - 2, "resume": has_resume}
    rows = lines - header
    if not broke and (expected is None or rows == expected):
        return {"end": "complete", "rows": rows}
    return {"end": "neither", "rows": rows}


class SmallPages(_Reader):
    """What people click: a 50-row page of either table, or the index."""

    weight = 10

    @task
    def small(self) -> None:
        demo = self.environment.parsed_options.demo_rows
        offset = random.randrange(0, demo - 50)
        choice = random.random()
        if choice < 0.1:
            self.fetch("/", "small", "index", None)
        elif choice < 0.55:
            self.fetch(f"/tables/orders?limit=50&offset={offset}", "small", "html", 50)
        else:
            self.fetch(f"/tables/pg_orders?limit=50&offset={offset}", "small", "html", 50)


class Pages(_Reader):
    """100,000-row HTML pages."""

    weight = 3

    @task
    def page(self) -> None:
        self.fetch("/tables/synthetic?limit=100000", "page100k", "html", 100_000)


class Downloads(_Reader):
    """100,000-row CSV and NDJSON downloads, of the synthetic and the PostgreSQL table."""

    weight = 3

    @task
    def download(self) -> None:
        demo = self.environment.parsed_options.demo_rows
        if random.random() < 0.5:
            self.fetch("/tables/synthetic.csv?limit=100000", "csv", "csv", 100_000)
        else:
            rows = min(demo, 100_000)
            self.fetch(f"/tables/pg_orders.ndjson?limit={rows}", "ndjson", "ndjson", rows)


class LongStreams(_Reader):
    """A few 1M- and 5M-row streams, longer than a drain's grace."""

    fixed_count = 2

    @task
    def long(self) -> None:
        sizes = [int(n) for n in self.environment.parsed_options.long_rows.split(",") if n]
        rows = random.choice(sizes)
        fmt = random.choice(["csv", "ndjson"])
        self.fetch(f"/tables/synthetic.{fmt}?limit={rows}", "long", fmt, rows)
