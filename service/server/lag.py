"""How late this process's threads get to run: the measure admission sheds load by.

A fixed number of stream slots turned readers away at 12 % CPU when they were slow (issue 30:
eight readers at 2 MB/s took every slot of a process that renders 130 MB/s), and would accept
too many when they are fast. What actually runs out is the interpreter: rendering holds the GIL,
and when more threads want it than it can serve, every one of them — the loop thread answering
``/healthz`` among them — waits longer for its turn. That wait is measured directly, as Node's
``toobusy`` and hapi's ``load.maxEventLoopDelay`` measure an event loop's: a thread asks to wake
every ``INTERVAL_S`` and records how late it woke. Readers that wait on their sockets cost the
GIL nothing and do not raise it; readers that need more rendering than the process has do.

The figure is smoothed (an exponentially weighted mean over about a second) so that one slow
garbage collection does not refuse streams, and exported as ``tablestream_scheduling_lag_seconds``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["PROCESS_LAG", "SchedulingLag"]

INTERVAL_S = 0.02  # how often the sampler asks to wake
WEIGHT = 0.1  # of each new sample in the smoothed figure (~10 samples: ~0.2-1 s)
EXPORT_EVERY = 50  # samples between updates of the exported gauges (~1 s)


class SchedulingLag:
    """A daemon thread's lateness in waking, smoothed; ``seconds`` is the current figure."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._gauges: list[Any] = []
        self._asked = time.monotonic()  # when the sampler last went to sleep

    def export_to(self, gauge: Any) -> None:
        """Set ``gauge`` (tablestream_scheduling_lag_seconds) to the figure about once a second."""
        with self._lock:
            self._gauges.append(gauge)
        gauge.set(self.seconds)

    def start(self) -> SchedulingLag:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tablestream-lag", daemon=True
                )
                self._thread.start()
        return self

    @property
    def now(self) -> float:
        """The figure, or the sampler's own lateness so far if that is worse: a sampler starved
        of the interpreter cannot report, and its last figure would be a stale low one."""
        late = time.monotonic() - self._asked - INTERVAL_S
        return max(self.seconds, late) if self._thread is not None else self.seconds

    def _run(self) -> None:
        samples = 0
        while True:
            asked = self._asked = time.monotonic()
            time.sleep(INTERVAL_S)
            late = max(0.0, time.monotonic() - asked - INTERVAL_S)
            self.seconds += WEIGHT * (late - self.seconds)
            samples += 1
            if samples % EXPORT_EVERY == 0:
                with self._lock:
                    gauges = list(self._gauges)
                for gauge in gauges:
                    gauge.set(self.seconds)


# One per process: the lag is the process's, whichever app (tests make many) asks for it. It
# starts with the first stream admitted, so a process that serves none runs no sampler.
PROCESS_LAG = SchedulingLag()
