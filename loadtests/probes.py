"""What a user and an orchestrator see while an attack runs, sampled from outside the server.

A liveness probe opens a fresh connection to ``/healthz`` every 100 ms (as kubelet does, with a
2 s timeout: no answer in 2 s is unanswered); a user asks for a 10-row page every second; the
server's resident memory and the disk in its deleted temp files (waitress's overflow buffers,
which RSS never shows) are read from ``/proc`` four times a second.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tablestream.testing import descriptor_census, process_cpu_seconds, rss_bytes

__all__ = ["HEALTH_TIMEOUT", "Probe", "ProbeFigures", "Probes", "get", "percentile"]

HEALTH_INTERVAL = 0.1
HEALTH_TIMEOUT = 2.0
SMALL_PATH = "/tables/orders?limit=10"
SMALL_INTERVAL = 1.0
SMALL_TIMEOUT = 5.0
SAMPLE_INTERVAL = 0.25


def get(host: str, port: int, path: str, timeout: float) -> tuple[int | None, float]:
    """GET ``path`` on a fresh connection and read the whole body: (status or None, seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - started
    finally:
        connection.close()


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class Probe(NamedTuple):
    status: int | None  # None: no answer within the timeout
    seconds: float
    at: float  # monotonic() when the probe started


@dataclass
class ProbeFigures:
    health: list[Probe] = field(default_factory=list)
    small: list[Probe] = field(default_factory=list)
    rss_peak: int = 0
    disk_peak: int = 0
    sockets_peak: int = 0  # the server's open sockets (the listener among them)
    cpu_seconds: float = 0.0  # the server's CPU time while the probes ran
    seconds: float = 0.0  # how long the probes ran

    def answered(self, which: str) -> list[float]:
        return [p.seconds for p in getattr(self, which) if p.status == 200]

    def latencies(self, which: str) -> list[float]:
        """Every probe's seconds, an unanswered (or failed) one as infinity."""
        return [p.seconds if p.status == 200 else math.inf for p in getattr(self, which)]

    def unanswered(self, which: str) -> int:
        return sum(1 for p in getattr(self, which) if p.status != 200)

    def until(self, moment: float) -> ProbeFigures:
        """The probes started before ``moment`` (the resource peaks are kept whole)."""
        return ProbeFigures(
            [p for p in self.health if p.at < moment],
            [p for p in self.small if p.at < moment],
            self.rss_peak,
            self.disk_peak,
            self.sockets_peak,
            self.cpu_seconds,
            self.seconds,
        )

    @property
    def cpu_percent(self) -> float | None:
        return 100 * self.cpu_seconds / self.seconds if self.seconds else None


@dataclass
class Probes:
    """Three background threads probing ``host:port`` and sampling process ``pid``."""

    host: str
    port: int
    pid: int
    figures: ProbeFigures = field(default_factory=ProbeFigures)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._every, args=(HEALTH_INTERVAL, self._health), daemon=True),
            threading.Thread(target=self._every, args=(SMALL_INTERVAL, self._small), daemon=True),
            threading.Thread(target=self._every, args=(SAMPLE_INTERVAL, self.sample), daemon=True),
        ]

    def start(self) -> None:
        self._started = time.monotonic()
        self._cpu = self._cpu_now()
        for thread in self._threads:
            thread.start()

    def stop(self) -> ProbeFigures:
        self._stop.set()
        cpu = self._cpu_now()
        if cpu is not None and self._cpu is not None:
            self.figures.cpu_seconds = cpu - self._cpu
            self.figures.seconds = time.monotonic() - self._started
        for thread in self._threads:
            thread.join(timeout=SMALL_TIMEOUT + 1)
        return self.figures

    def sample(self) -> None:
        try:
            rss = rss_bytes(self.pid)
            disk, sockets = descriptor_census(self.pid)
        except (OSError, RuntimeError):  # the process is gone (the drain attack ends it)
            return
        self.figures.rss_peak = max(self.figures.rss_peak, rss)
        self.figures.disk_peak = max(self.figures.disk_peak, disk)
        self.figures.sockets_peak = max(self.figures.sockets_peak, sockets)

    def _cpu_now(self) -> float | None:
        try:
            return process_cpu_seconds(self.pid)
        except (OSError, RuntimeError):
            return None

    def _every(self, interval: float, probe: Callable[[], None]) -> None:
        # A probe that takes longer than the interval delays the next one; none overlap.
        next_at = time.monotonic()
        while not self._stop.is_set():
            probe()
            next_at = max(next_at + interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _health(self) -> None:
        at = time.monotonic()
        self.figures.health.append(
            Probe(*get(self.host, self.port, "/healthz", HEALTH_TIMEOUT), at)
        )

    def _small(self) -> None:
        at = time.monotonic()
        status, seconds = get(self.host, self.port, SMALL_PATH, SMALL_TIMEOUT)
        self.figures.small.append(Probe(status, seconds, at))
