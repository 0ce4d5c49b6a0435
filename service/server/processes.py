"""``tablestream serve --processes N``: N waitress processes behind one port.

Rendering rows holds the GIL, so one process uses one core however many threads it has. The
parent binds the listening socket once and starts N ``tablestream serve`` children that all
accept from it (the pre-fork model), so no external load balancer is needed on one machine.
One shared socket balances by load: an idle child's loop is waiting in ``select`` and takes a
new connection at once, while a busy child's loop first has to win the GIL back from its
rendering threads. With one SO_REUSEPORT socket per child instead, the kernel hashes each
connection to a child whatever its load: under 8 closed-loop clients one of two children was
nearly idle in 12-30% of half-second samples, against 0-8% with the shared socket
(``python -m bench.balance``). A draining child (SIGTERM) stops accepting and its siblings take
the new connections, where with SO_REUSEPORT the connections hashed to it would wait in its
backlog until the drain ends.

What a page asks about its stream (its outcome, its progress reports) may reach any child, so
the children share a board (``TABLESTREAM_SHARED_DIR``, observe/board.py): the parent makes it,
removes the records of a child that ends, and the directory at its own end. Without
``TABLESTREAM_SECRET_FILE`` the parent also writes one random secret there for the children, so
a "next rows" link made by one child is taken by every other (``config/secretfile.py``).

Metrics are aggregated through PROMETHEUS_MULTIPROC_DIR, which the parent empties once before
any child starts (a child cleaning it would wipe its siblings' values), and the parent — not a
child — serves the separate metrics port when one is set, so every scrape sees the sum. SIGTERM
and SIGINT are passed on; the parent exits when all children have, non-zero if any child
failed.

What the parent decides — replace a child that ends, give up when replacements keep dying
within seconds, reload on SIGHUP and undo a reload whose new children die — is the pure
``Supervisor`` of ``supervisor.py``; this module is its driver: it binds the socket, starts and
signals children, reaps them and feeds those events back. Signal handlers only queue the
signal, so all decisions are taken in one loop. A whole-server stop closes the parent's
descriptor of the socket as the children close theirs, so new connections are refused at once;
a child retired by a reload closes only its own and its siblings go on accepting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import Settings
from ..config.secretfile import write_secret
from ..observe.board import Board
from .listening import bind_errors_exit, listening_socket
from .metricsport import serve_metrics_port
from .supervisor import Action, Kill, Supervisor, is_clean

__all__ = ["clean_multiprocess_dir", "supervise"]

log = logging.getLogger("tablestream")

POLL_S = 0.05  # how often the parent looks for ended children between signals


def clean_multiprocess_dir(path: str) -> None:
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def _signal(pid: int, signum: int) -> None:
    # os.kill, not Popen.send_signal: that polls, and could reap a child behind waitpid's back.
    # Only the loop below reaps, so a pid cannot be reused before the supervisor saw it end.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def supervise(settings: Settings) -> int:
    """Run ``settings.processes`` children on one port until they exit; the exit status."""
    from prometheus_client.multiprocess import mark_process_dead

    own_dir = not settings.prometheus_multiproc_dir
    metrics_dir = settings.prometheus_multiproc_dir or tempfile.mkdtemp(
        prefix="tablestream-metrics-"
    )
    clean_multiprocess_dir(metrics_dir)
    with bind_errors_exit(settings.host, settings.port, "TABLESTREAM_HOST or TABLESTREAM_PORT"):
        listener = listening_socket(
            settings.host, settings.port, settings.backlog, settings.reuse_port
        )
    shared_dir = tempfile.mkdtemp(prefix="tablestream-shared-")  # mode 0700: this user's only
    host, port = listener.getsockname()[:2]
    secret_file = settings.secret_file
    if not secret_file:
        # One secret for every child, so a "next rows" link made by one is taken by the others.
        secret_file = os.path.join(shared_dir, "keyset.secret")
        write_secret(secret_file)
    env = {
        **os.environ,
        **settings.to_env(),  # the parent's settings whole, flags included, not just its env
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "TABLESTREAM_SHARED_DIR": shared_dir,
        "TABLESTREAM_SECRET_FILE": secret_file,
        "TABLESTREAM_PROCESSES": "1",
        "TABLESTREAM_LISTEN_FD": str(listener.fileno()),
        "TABLESTREAM_HOST": host,
        "TABLESTREAM_PORT": str(port),
    }
    if settings.metrics_port:
        serve_metrics_port(settings, multiprocess_dir=metrics_dir)

    supervisor = Supervisor(settings.processes)
    # Signal handlers only queue what happened (SimpleQueue.put is safe in a handler); the loop
    # below is the one place that decides, spawns, signals and reaps.
    events: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda n, _f: events.put(("stop", n)))
    signal.signal(signal.SIGHUP, lambda n, _f: events.put(("reload", n)))

    def run(actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Kill):
                _signal(action.pid, action.signum)
                continue
            proc = subprocess.Popen(
                [sys.executable, "-m", "tablestream", "serve"],
                env=env,
                pass_fds=[listener.fileno()],
            )
            if action.replaces:
                (log.info if is_clean(action.code) else log.error)(
                    "process %d exited with %d; started process %d in its place",
                    action.replaces,
                    action.code,
                    proc.pid,
                )
            run(supervisor.started(proc.pid, time.monotonic(), trial=action.trial))
        for level, message in supervisor.log:
            log.log(level, "%s", message)
        supervisor.log.clear()

    run(supervisor.start())
    log.info(
        "tablestream supervising %d processes (pids %s) on %s:%s, metrics in %s",
        len(supervisor.children),
        " ".join(str(pid) for pid in supervisor.children),
        host,
        port,
        metrics_dir,
    )
    while supervisor.children:
        try:
            kind, signum = events.get(timeout=POLL_S)
        except queue.Empty:
            pass
        else:
            if kind == "stop":
                run(supervisor.stop(signum))
                # The whole server stops: with the children's descriptors closing too, the
                # socket closes and new connections are refused at once, not left in the backlog.
                listener.close()
            else:
                run(supervisor.reload(time.monotonic()))
        run(supervisor.tick(time.monotonic()))
        while supervisor.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            mark_process_dead(pid, metrics_dir)
            Board.forget_process(shared_dir, pid)
            run(supervisor.exited(pid, os.waitstatus_to_exitcode(status), time.monotonic()))
            if supervisor.stopping:
                listener.close()
    listener.close()
    shutil.rmtree(shared_dir, ignore_errors=True)
    if own_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return supervisor.exit_status
