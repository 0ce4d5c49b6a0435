"""SQLite's first-row deadline (sources/deadline.py): one thread interrupts at each deadline.

The query runs without a progress handler (no Python called every N steps, so nothing waits for
a GIL that a rendering stream holds); these tests prove what the interrupting thread must never
get wrong: it stops the statement it was armed for, never one that runs after ``stop()``, never
takes another interrupt for its own, and survives a connection closed under it.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from tablestream.sources.deadline import SQLiteDeadline

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
# About a tenth of a second of stepping: long enough to be running when a stray interrupt came.
BOUNDED = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
    "SELECT count(*) FROM c"
)


def _run(conn: sqlite3.Connection, sql: str) -> tuple[float, BaseException | None]:
    """``sql``'s time and error; an endless one is stopped by a backstop after 10 s (then the
    deadline's ``expired`` is False: it was not the deadline that stopped it)."""
    backstop = threading.Timer(10, conn.interrupt)
    backstop.start()
    started = time.monotonic()
    try:
        conn.execute(sql).fetchone()
    except sqlite3.Error as exc:
        return time.monotonic() - started, exc
    finally:
        backstop.cancel()
    return time.monotonic() - started, None


def test_a_deadline_stops_its_statement_while_another_thread_holds_the_gil():
    spinning = threading.Event()
    done = threading.Event()

    def spin() -> None:  # pure bytecode: gives the GIL up only when asked to
        spinning.set()
        n = 0
        while not done.is_set():
            n += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    spinning.wait(5)
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        armed_at = time.monotonic()
        deadline = SQLiteDeadline(conn, 0.1).start()
        _, exc = _run(conn, ENDLESS)
        took = time.monotonic() - armed_at
        deadline.stop()
    finally:
        done.set()
        spinner.join(5)
        conn.close()
    assert exc is not None and deadline.expired(exc), exc
    assert 0.1 <= took < 10  # interrupted, not run to its end (it has none)


def test_a_stopped_deadline_never_interrupts_what_the_connection_runs_next():
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        for _ in range(5):
            deadline = SQLiteDeadline(conn, 0.02).start()
            deadline.stop()
            took, exc = _run(conn, BOUNDED)  # still running when the deadline passes
            assert took > 0.02, "the statement ended before the deadline: it proves nothing"
            assert exc is None, f"interrupted after stop() ({took:.3f} s in)"
    finally:
        conn.close()


def test_an_interrupt_from_elsewhere_is_not_taken_for_the_deadline():
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        deadline = SQLiteDeadline(conn, 30).start()
        threading.Timer(0.05, conn.interrupt).start()
        _, exc = _run(conn, ENDLESS)
        deadline.stop()
    finally:
        conn.close()
    assert isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc)
    assert not deadline.expired(exc)


def test_a_connection_closed_with_its_deadline_armed_leaves_later_deadlines_working():
    gone = sqlite3.connect(":memory:")
    SQLiteDeadline(gone, 0.01).start()  # never stopped
    gone.close()
    time.sleep(0.05)  # its deadline passes on a closed connection
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        deadline = SQLiteDeadline(conn, 0.05).start()
        _, exc = _run(conn, ENDLESS)
        deadline.stop()
    finally:
        conn.close()
    assert exc is not None and deadline.expired(exc)


@pytest.mark.parametrize("seconds", [0, -1])
def test_no_limit_arms_nothing(seconds):
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        deadline = SQLiteDeadline(conn, seconds).start()
        _, exc = _run(conn, BOUNDED)
        deadline.stop()
    finally:
        conn.close()
    assert exc is None
