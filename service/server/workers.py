"""The worker threads that run requests: waitress's pool, started on demand, holding nothing idle.

service/server/tcpserver.py gives this pool to its server in place of waitress's own.
"""

from __future__ import annotations

import threading
from typing import Any

from waitress.task import ThreadedTaskDispatcher

from .allocator import give_back_memory

__all__ = ["FIRST_THREADS", "IDLE_RETIRE_S", "Workers"]

FIRST_THREADS = 8  # worker threads started with the server; more start as tasks need them
# A thread beyond FIRST_THREADS idle this long ends: a burst of streams touched each one's stack
# (a few hundred KiB of Jinja frames), which stays resident while the thread lives and is given
# back when it exits (glibc madvises a dead thread's stack away).
IDLE_RETIRE_S = 3.0


class Workers(ThreadedTaskDispatcher):
    """waitress's worker threads, started as tasks need them, holding nothing while idle.

    - **Started on demand, up to the thread count, and ended when idle**: a stream holds its
      thread while its client reads, so the count is sized for hundreds of slow readers
      (docs/operations.md#sizing), but a process that serves a few runs a few. A task finding no
      idle thread starts one at once; one idle for ``IDLE_RETIRE_S`` ends (down to
      ``FIRST_THREADS``).
    - **An idle thread holds no reference to its last task**: waitress's ``handler_thread``
      keeps its last ``task`` in a local variable while it waits for the next one, and with it
      the task's channel, request, WSGI environ and response. After an attack those were
      allocated in the middle of it, each pinning one of the allocator's 1 MiB arenas that would
      otherwise have gone back to the system (docs/reliability.md).
    """

    most = 0  # the thread count asked for: the ceiling

    def __init__(self) -> None:
        super().__init__()
        self.fresh: set[int] = set()  # started threads that have not yet taken a task or waited
        self._unstarted: list[int] = []  # thread numbers counted as started, for the starter
        self._start_cv = threading.Condition(self.lock)
        self._starter: threading.Thread | None = None

    def set_thread_count(self, count: int) -> None:
        """Remember ``count`` as the ceiling; start at most ``FIRST_THREADS`` now (0: stop all)."""
        with self.lock:
            self.most = count
            running = len(self.threads) - self.stop_count
            if running > count:
                self.stop_count += running - count
                self.queue_cv.notify_all()
            for _ in range(min(count, FIRST_THREADS) - running):
                self.start_new_thread(self.handler_thread, self._count_thread())

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()
            running = len(self.threads) - self.stop_count
            ready = running - self.active_count + len(self.fresh)
            for _ in range(min(len(self.queue) - ready, self.most - running)):
                self._start_thread()

    def _retire(self, thread_no: int) -> bool:
        """End this idle thread if more than ``FIRST_THREADS`` run (the lock is held)."""
        if len(self.threads) - self.stop_count <= FIRST_THREADS:
            return False
        self.threads.discard(thread_no)
        self.thread_exit_cv.notify()
        return True

    def _count_thread(self) -> int:
        """The number of one more handler thread, counted as running (the lock is held)."""
        thread_no = 0
        while thread_no in self.threads:
            thread_no += 1
        self.threads.add(thread_no)
        self.fresh.add(thread_no)  # it will take a queued task: no other thread is started for it
        self.active_count += 1  # until it waits for a task (handler_thread counts it idle)
        return thread_no

    def _start_thread(self) -> None:
        """One more handler thread for a task (the lock is held), started by the starter.

        ``Thread.start()`` waits until the new thread has run, which needs the interpreter: on
        a process busy rendering that took ~10 ms a thread, and the loop thread, which hands
        requests over, used to start them itself (a burst of 30 streams held it 340 ms, its
        probes and 503s unanswered). The starter thread (made at the first such start) waits
        for that instead.
        """
        self._unstarted.append(self._count_thread())
        if self._starter is None:
            self._starter = threading.Thread(
                target=self._start_threads, name="tablestream-thread-starter", daemon=True
            )
            self._starter.start()
        self._start_cv.notify()

    def _start_threads(self) -> None:
        while True:
            with self.lock:
                while not self._unstarted:
                    self._start_cv.wait()
                numbers, self._unstarted = self._unstarted, []
            for thread_no in numbers:
                self.start_new_thread(self.handler_thread, thread_no)

    def handler_thread(self, thread_no: int) -> None:
        while True:
            retired = last = False
            with self.lock:
                self.fresh.discard(thread_no)
                while not self.queue and self.stop_count == 0:
                    self.active_count -= 1  # idle while waiting (as waitress counts it)
                    woken = self.queue_cv.wait(IDLE_RETIRE_S)
                    if not woken and not self.queue and self._retire(thread_no):
                        retired = True
                        last = len(self.threads) - self.stop_count <= FIRST_THREADS
                        break
                    self.active_count += 1
                if not retired:
                    if self.stop_count > 0:
                        self.active_count -= 1
                        self.stop_count -= 1
                        self.threads.discard(thread_no)
                        self.thread_exit_cv.notify()
                        break
                    task = self.queue.popleft()
            if retired:
                if last:  # the burst is over: what its threads and tasks held goes back
                    give_back_memory()
                return
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            del task  # an idle thread holds nothing of it: see the class docstring
