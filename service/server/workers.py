"""The worker threads that run requests: waitress's pool, started on demand, holding nothing idle.

service/server/connections.py gives this pool to its server in place of waitress's own.
"""

from __future__ import annotations

from typing import Any

from waitress.task import ThreadedTaskDispatcher

__all__ = ["FIRST_THREADS", "Workers"]

FIRST_THREADS = 8  # worker threads started with the server; more start as tasks need them


class Workers(ThreadedTaskDispatcher):
    """waitress's worker threads, started as tasks need them, holding nothing while idle.

    - **Started on demand, up to the thread count**: a stream holds its thread while its client
      reads, so the count is sized for hundreds of slow readers (docs/operations.md#sizing), but
      a process that serves a few starts a few. A task finding no idle thread starts one at once.
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

    def set_thread_count(self, count: int) -> None:
        """Remember ``count`` as the ceiling; start at most ``FIRST_THREADS`` now (0: stop all)."""
        with self.lock:
            self.most = count
            running = len(self.threads) - self.stop_count
            if running > count:
                self.stop_count += running - count
                self.queue_cv.notify_all()
            for _ in range(min(count, FIRST_THREADS) - running):
                self._start_thread()

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()
            running = len(self.threads) - self.stop_count
            ready = running - self.active_count + len(self.fresh)
            for _ in range(min(len(self.queue) - ready, self.most - running)):
                self._start_thread()

    def _start_thread(self) -> None:
        """One more handler thread (the lock is held), as waitress's set_thread_count does."""
        thread_no = 0
        while thread_no in self.threads:
            thread_no += 1
        self.threads.add(thread_no)
        self.fresh.add(thread_no)  # it will take a queued task: no other thread is started for it
        self.active_count += 1  # until it waits for a task (handler_thread counts it idle)
        self.start_new_thread(self.handler_thread, thread_no)

    def handler_thread(self, thread_no: int) -> None:
        while True:
            with self.lock:
                self.fresh.discard(thread_no)
                while not self.queue and self.stop_count == 0:
                    self.active_count -= 1  # idle while waiting (as waitress counts it)
                    self.queue_cv.wait()
                    self.active_count += 1
                if self.stop_count > 0:
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                task = self.queue.popleft()
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            del task  # the point of this class: see its docstring
