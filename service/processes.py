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
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import Settings
from .listening import bind_errors_exit, listening_socket

__all__ = ["clean_multiprocess_dir", "supervise"]

log = logging.getLogger("tablestream")


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
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "service", "serve"], env=env, pass_fds=[listener.fileno()]
        )
        for _ in range(settings.processes)
    ]
    listener.close()  # the children hold it; the parent never accepts
    log.info(
        "tablestream supervising %d processes (pids %s) on %s:%s, metrics in %s",
        len(children),
        " ".join(str(c.pid) for c in children),
        host,
        port,
        metrics_dir,
    )

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for child in children:
        code = child.wait()
        mark_process_dead(child.pid, metrics_dir)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            failed += 1
            log.error("process %d exited with %d", child.pid, code)
    if own_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if failed else 0
