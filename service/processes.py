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

Metrics are aggregated through PROMETHEUS_MULTIPROC_DIR, which the parent empties once before
any child starts (a child cleaning it would wipe its siblings' values), and the parent — not a
child — serves the separate metrics port when one is set, so every scrape sees the sum. SIGTERM
and SIGINT are passed on; the parent exits when all children have, non-zero if any child
failed.

A child that ends while the parent is not stopping (killed by the OOM killer, crashed, or sent
SIGTERM on its own for a rolling restart) is replaced at once from the same socket, as gunicorn's
arbiter does, so capacity does not halve silently. A child that cannot start (5 in a row ending
within 10 s) is not retried for ever: the parent stops the others and exits 1, for the process
manager above it to see. SIGHUP reloads without dropping a request: a new process is started for
each running one (it imports the code and opens the data sources anew; the settings stay the
parent's: every setting, command-line flags included, is handed down in the environment); 3 s
later, if the new ones are still up, the old ones drain their streams and end — if one of the
new ones ended (broken code, a missing database), the reload is undone and the old ones keep
serving. A whole-server stop closes the parent's descriptor of the socket as the children
close theirs, so new connections are refused at once; a retiring child closes only its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .listening import bind_errors_exit, listening_socket

__all__ = ["clean_multiprocess_dir", "supervise"]

log = logging.getLogger("tablestream")


QUICK_DEATH_S = 10  # a child that ends sooner than this after it started counts as a crash
MAX_QUICK_DEATHS = 5  # crashes in a row before the supervisor gives up (it cannot start children)
RELOAD_OVERLAP_S = 3  # on SIGHUP, old and new processes both accept this long (a start takes ~1 s)


@dataclass
class _Child:
    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)

    def age(self) -> float:
        return time.monotonic() - self.started


def _signal(pid: int, signum: int) -> None:
    # os.kill, not Popen.send_signal: that polls, and could reap a child behind os.wait()'s back.
    # Only os.wait() reaps here, so a pid cannot be reused before the loop has seen it end.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def clean_multiprocess_dir(path: str) -> None:
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def supervise(settings: Settings) -> int:
    """Run ``settings.processes`` children on one port until they exit; the exit status."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    own_dir = not settings.prometheus_multiproc_dir
    metrics_dir = settings.prometheus_multiproc_dir or tempfile.mkdtemp(
        prefix="tablestream-metrics-"
    )
    clean_multiprocess_dir(metrics_dir)
    with bind_errors_exit(settings.host, settings.port, "TABLESTREAM_HOST or TABLESTREAM_PORT"):
        listener = listening_socket(
            settings.host, settings.port, settings.backlog, settings.reuse_port
        )
    host, port = listener.getsockname()[:2]
    env = {
        **os.environ,
        **settings.to_env(),  # the parent's settings whole, flags included, not just its env
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "TABLESTREAM_PROCESSES": "1",
        "TABLESTREAM_LISTEN_FD": str(listener.fileno()),
        "TABLESTREAM_HOST": host,
        "TABLESTREAM_PORT": str(port),
    }
    if settings.metrics_port:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics_dir)
        with bind_errors_exit(
            settings.metrics_host,
            settings.metrics_port,
            "TABLESTREAM_METRICS_HOST or TABLESTREAM_METRICS_PORT",
        ):
            start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)

    def spawn() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "serve"], env=env, pass_fds=[listener.fileno()]
        )

    children = {c.pid: _Child(c) for c in (spawn() for _ in range(settings.processes))}
    log.info(
        "tablestream supervising %d processes (pids %s) on %s:%s, metrics in %s",
        len(children),
        " ".join(str(pid) for pid in children),
        host,
        port,
        metrics_dir,
    )
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signum)
        # The whole server stops: with the children's descriptors closing too, the socket
        # closes and new connections are refused at once instead of waiting in the backlog.
        listener.close()

    retiring: set[int] = set()  # old processes a reload is replacing: their end is expected
    on_trial: set[int] = set()  # new processes a reload started: not replaced if they end

    def reload(_signum: int, _frame: object) -> None:
        """SIGHUP: start a new process per running one; retire the old ones if the new live."""
        if stopping:
            return
        old = [pid for pid in children if pid not in retiring and pid not in on_trial]
        fresh = []
        for _ in old:
            proc = spawn()
            children[proc.pid] = _Child(proc)
            fresh.append(proc.pid)
        on_trial.update(fresh)
        if stopping:  # a stop signal came while this handler was starting them
            for pid in list(children):
                _signal(pid, signal.SIGTERM)
            return

        def judge() -> None:  # once the new ones have had time to start accepting
            on_trial.difference_update(fresh)
            if stopping:
                return
            dead = [pid for pid in fresh if pid not in children]
            if dead:
                log.error(
                    "SIGHUP reload failed: new process(es) %s ended within %d s; the old ones "
                    "keep serving",
                    " ".join(map(str, dead)),
                    RELOAD_OVERLAP_S,
                )
                undo = [pid for pid in fresh if pid in children]
                retiring.update(undo)
            else:
                # Every process but the new ones: the old, and any that replaced one that died.
                undo = [p for p in children if p not in fresh and p not in retiring | on_trial]
                retiring.update(undo)
                log.info("SIGHUP reload: processes %s drain and end", " ".join(map(str, undo)))
            for pid in undo:
                _signal(pid, signal.SIGTERM)

        timer = threading.Timer(RELOAD_OVERLAP_S, judge)
        timer.daemon = True
        timer.start()
        log.info(
            "SIGHUP: started %s; they replace %s if they are still up in %d s",
            " ".join(map(str, fresh)),
            " ".join(map(str, old)),
            RELOAD_OVERLAP_S,
        )

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reload)
    failed, quick_deaths = 0, 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        child = children.pop(pid, None)
        if child is None:
            continue
        code = child.proc.returncode = os.waitstatus_to_exitcode(status)
        mark_process_dead(pid, metrics_dir)
        clean = code in (0, -signal.SIGTERM, -signal.SIGINT)
        if pid in retiring or pid in on_trial:
            retiring.discard(pid)  # a process on trial that ends is judged by the reload
            if not clean:
                log.error("process %d exited with %d during a SIGHUP reload", pid, code)
            continue
        if stopping:
            if not clean:
                failed += 1
                log.error("process %d exited with %d", pid, code)
            continue
        quick_deaths = quick_deaths + 1 if child.age() < QUICK_DEATH_S else 0
        if quick_deaths >= MAX_QUICK_DEATHS:
            log.error(
                "process %d exited with %d; %d processes in a row ended within %d s of starting: "
                "giving up and stopping the others",
                pid,
                code,
                quick_deaths,
                QUICK_DEATH_S,
            )
            failed += 1
            forward(signal.SIGTERM, None)
            continue
        replacement = spawn()
        children[replacement.pid] = _Child(replacement)
        if stopping:  # the signal came while it was being started: it was not told
            _signal(replacement.pid, signal.SIGTERM)
        (log.info if clean else log.error)(
            "process %d exited with %d; started process %d in its place", pid, code, replacement.pid
        )
    listener.close()
    if own_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if failed else 0
