"""An idle server keeps nothing of the requests it served last.

Objects kept past their request were allocated in the middle of the traffic that made them, so
each one pins an allocator arena that would otherwise go back to the system when the traffic
ends (docs/reliability.md: RSS after the stalled readers + slowloris attack). These tests fail
against plain waitress (its idle worker threads keep their last task) and against a watchdog
whose loop variable outlives the round.
"""

from __future__ import annotations

import threading
import time
import weakref

from tablestream.server.watchdog import Watchdog
from tablestream.server.workers import Workers


class _Task:
    def __init__(self) -> None:
        self.done = threading.Event()

    def service(self) -> None:
        self.done.set()

    def cancel(self) -> None:
        pass


class _Environ(dict):
    """A WSGI environ that a weak reference can watch (a plain dict cannot be)."""


def _released(ref: weakref.ref, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ref() is None:
            return True
        time.sleep(0.01)
    return False


def test_an_idle_worker_thread_holds_no_reference_to_its_last_task():
    dispatcher = Workers()
    dispatcher.set_thread_count(2)
    try:
        task = _Task()
        dispatcher.add_task(task)
        assert task.done.wait(5)
        ref = weakref.ref(task)
        del task
        assert _released(ref)
    finally:
        dispatcher.shutdown(cancel_pending=True, timeout=5)


def test_the_watchdog_holds_no_reference_to_a_finished_stream():
    watchdog = Watchdog(write_timeout=60, interval=0.01, min_rate=1, rate_window=60)
    environ = _Environ()
    progress = watchdog.observer("orders", environ)
    progress.chunk_sent(100, 1, 100)
    time.sleep(0.1)  # a few rounds see the stream
    ref = weakref.ref(environ)
    progress.finished("completed", 1)
    del progress, environ
    assert _released(ref)
