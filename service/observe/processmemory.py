"""The resident memory of each server process as a metric that works with ``--processes`` too.

prometheus_client's ``process_*`` collectors do not work in multiprocess mode, so
``tablestream_process_resident_memory_bytes`` (one series per pid) is exported in both modes
and is what dashboards, alerts and load tests read. With one process it is read at scrape time
(``ResidentMemoryCollector``); with ``PROMETHEUS_MULTIPROC_DIR`` a scrape reaches only one
process, so each writes its own value to the shared files and keeps it fresh with a sampler
thread (``SampledResidentMemory``). ``metrics.py`` picks one of the two.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily

__all__ = ["ResidentMemoryCollector", "SampledResidentMemory", "resident_memory_bytes"]

_NAME = "tablestream_process_resident_memory_bytes"
_DOC = "Resident memory of each server process"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_memory_bytes() -> int:
    """This process's resident set size, read from /proc (0 where there is no /proc)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return 0


class ResidentMemoryCollector:
    """Single-process mode: the gauge is read at scrape time, labelled with this pid."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(_NAME, _DOC, labels=["pid"])
        family.add_metric([str(os.getpid())], resident_memory_bytes())
        yield family


class SampledResidentMemory:
    """Multiprocess mode: this process's RSS written to its file, now and by ``start``'s thread."""

    def __init__(self) -> None:
        # liveall: prometheus_client adds the pid label and drops dead processes' series.
        self._gauge = Gauge(_NAME, _DOC, multiprocess_mode="liveall")
        self.refresh()

    def refresh(self) -> None:
        self._gauge.set(resident_memory_bytes())

    def start(self, interval: float) -> None:
        """A scrape reaches one process, so each keeps its own RSS fresh."""

        def sample() -> None:
            while True:
                time.sleep(interval)
                self.refresh()

        threading.Thread(target=sample, name="tablestream-rss-sampler", daemon=True).start()
