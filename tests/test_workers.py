"""The worker pool starts threads as tasks need them, up to its count, and never queues a task
while it may still start a thread for it (service/server/workers.py)."""

from __future__ import annotations

import threading

from tablestream.server.workers import FIRST_THREADS, Workers


class _Blocking:
    """A task that holds its thread until released."""

    def __init__(self, release: threading.Event) -> None:
        self.started = threading.Event()
        self._release = release

    def service(self) -> None:
        self.started.set()
        self._release.wait(10)

    def cancel(self) -> None:
        pass


def test_a_big_pool_starts_a_few_threads_and_one_more_for_each_task_that_finds_none_idle():
    workers = Workers()
    release = threading.Event()
    workers.set_thread_count(200)
    try:
        assert len(workers.threads) == FIRST_THREADS
        tasks = [_Blocking(release) for _ in range(FIRST_THREADS + 20)]
        for task in tasks:
            workers.add_task(task)
        assert all(task.started.wait(5) for task in tasks), "a task waited for a thread"
        assert len(workers.threads) == FIRST_THREADS + 20
    finally:
        release.set()
        workers.shutdown(cancel_pending=True, timeout=5)


def test_the_pool_never_grows_past_its_count():
    workers = Workers()
    release = threading.Event()
    workers.set_thread_count(3)
    try:
        tasks = [_Blocking(release) for _ in range(5)]
        for task in tasks:
            workers.add_task(task)
        assert sum(task.started.wait(0.5) for task in tasks) == 3
        assert len(workers.threads) == 3
        release.set()
        assert all(task.started.wait(5) for task in tasks)  # the two queued ones ran after
    finally:
        release.set()
        workers.shutdown(cancel_pending=True, timeout=5)


def test_threads_beyond_the_first_end_after_idling_and_the_pool_grows_again(monkeypatch):
    monkeypatch.setattr("tablestream.server.workers.IDLE_RETIRE_S", 0.2)
    workers = Workers()
    release = threading.Event()
    workers.set_thread_count(50)
    try:
        tasks = [_Blocking(release) for _ in range(FIRST_THREADS + 6)]
        for task in tasks:
            workers.add_task(task)
        assert all(task.started.wait(5) for task in tasks)
        release.set()
        deadline = threading.Event()
        for _ in range(50):  # up to 5 s for the idle ones to end
            if len(workers.threads) == FIRST_THREADS:
                break
            deadline.wait(0.1)
        assert len(workers.threads) == FIRST_THREADS
        again = [_Blocking(release) for _ in range(FIRST_THREADS + 2)]
        for task in again:
            workers.add_task(task)
        assert all(task.started.wait(5) for task in again)
    finally:
        release.set()
        workers.shutdown(cancel_pending=True, timeout=5)
