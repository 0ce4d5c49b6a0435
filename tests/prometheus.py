"""Debian's Prometheus for tests and load tests: started on a free port, queried, stopped.

tests/test_ops.py checks one instance's metrics through it, and loadtests/cluster.py scrapes
the three instances of a cluster with it (ops/alerts.yml loaded, so alerts can be watched).
It scrapes (by default) and evaluates every second, so a test waits seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from tablestream.testing import free_port

from .servers import ROOT

__all__ = ["ALERTS", "PROMETHEUS", "poll", "prometheus", "query"]

ALERTS = ROOT / "ops" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def query(api: str, expr: str, at: float | None = None) -> list[dict]:
    """The result vector of ``expr`` (at the Unix time ``at``, else now)."""
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def poll(api: str, expr: str, want: Callable[[list[dict]], bool], timeout: float = 60) -> list:
    """Query ``expr`` until ``want`` accepts the result; the last result either way."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        try:
            seen = query(api, expr)
        except OSError:
            seen = []
        if want(seen):
            break
        time.sleep(0.5)
    return seen


@contextlib.contextmanager
def prometheus(
    folder: Path,
    scrape_configs: list[dict],
    rule_files: tuple[Path, ...] = (ALERTS,),
    interval: str = "1s",
) -> Iterator[str]:
    """Debian's Prometheus on 127.0.0.1 scraping every ``interval``; its API URL while it runs."""
    config = folder / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": "1s"},
                "rule_files": [str(path) for path in rule_files],
                "scrape_configs": scrape_configs,
            }
        )
    )
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
