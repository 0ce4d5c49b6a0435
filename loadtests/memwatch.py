"""Sample the server's resident memory from its own ``/metrics`` while the load runs.

Reading the service's metric rather than ``/proc`` means the same watcher works against a
remote or multi-process deployment. ``tablestream_process_resident_memory_bytes`` has one series
per server process in single and multiprocess mode alike (prometheus_client's own
``process_resident_memory_bytes`` disappears in multiprocess mode), so each sample keeps the sum
over processes (what the verdict judges) and the largest one.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["METRIC", "MemorySample", "MemoryWatcher", "resident_bytes"]

METRIC = "tablestream_process_resident_memory_bytes"


def resident_bytes(exposition: str) -> list[float]:
    """The value of every ``METRIC`` series (one per server process) in a /metrics page."""
    return [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == METRIC
    ]


@dataclass(frozen=True)
class MemorySample:
    seconds: float
    rows: int
    users: int
    rss_total: float
    rss_max: float
    processes: int


@dataclass
class MemoryWatcher:
    """A greenlet reading ``metrics_url`` every ``interval`` seconds, tagging the row step."""

    metrics_url: str
    interval: float
    rows_now: Callable[[], int | None]
    users_now: Callable[[], int]
    samples: list[MemorySample] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""

    def start(self) -> None:
        self._started = time.monotonic()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if getattr(self, "_greenlet", None) is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None

    def _run(self) -> None:
        while True:
            self.sample_once()
            gevent.sleep(self.interval)

    def sample_once(self) -> None:
        rows = self.rows_now()
        if rows is None:  # the shape has not ticked yet: no step to tag the sample with
            return
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                values = resident_bytes(response.read().decode())
        except (OSError, ValueError) as exc:
            self.errors += 1
            self.last_error = repr(exc)
            return
        if not values:
            self.errors += 1
            self.last_error = f"{METRIC} not found at {self.metrics_url}"
            return
        self.samples.append(
            MemorySample(
                seconds=time.monotonic() - self._started,
                rows=rows,
                users=self.users_now(),
                rss_total=sum(values),
                rss_max=max(values),
                processes=len(values),
            )
        )
