"""A real ``tablestream serve`` as a child process, for tests, benchmarks, load tests and docs.

Everything that measures the service from outside needs the same few things: start the server
on 127.0.0.1 and a free port, wait until ``/healthz`` answers, read its memory and CPU from
/proc (summed over the children of ``--processes``), and stop it — SIGTERM first, so it drains
as in production, then SIGKILL for the whole process group if it hangs. They are here once
(as Flask keeps its test client in ``flask.testing``) instead of once per folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ServerProcess",
    "descriptor_census",
    "free_port",
    "process_cpu_seconds",
    "refuses_connections",
    "rss_bytes",
    "temp_file_bytes",
    "wait_ready",
]

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url/healthz`` until it answers 200; fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def refuses_connections(port: int, host: str = "127.0.0.1") -> bool:
    """Is a new connection to ``host:port`` refused (nothing listens, or a drain closed it)?

    A connect that races the listener's close is reset by the kernel instead (the handshake was
    queued for a socket that then closed): that connection was not taken either."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def _status_bytes(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM) in bytes; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    """Resident memory of one process."""
    return _status_bytes(pid, "VmRSS")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def temp_file_bytes(pid: int) -> int:
    """Bytes in the process's open, deleted files: waitress's overflow buffers (RSS misses them)."""
    return descriptor_census(pid)[0]


def descriptor_census(pid: int) -> tuple[int, int]:
    """One walk of the process's descriptors: (bytes in open deleted files, open sockets)."""
    total = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if target.startswith("socket:"):
                sockets += 1
            elif target.endswith("(deleted)"):
                total += os.stat(path).st_size
        except OSError:
            continue
    return total, sockets


@dataclass
class ServerProcess:
    """``tablestream serve`` (or ``argv``) in its own process group, ready when constructed.

    ``env`` is added to the environment (after ``TABLESTREAM_HOST=host``, so it may
    change it); ``TABLESTREAM_PORT`` is always ``port``. ``host`` is where it is reached
    (another loopback address, or a network namespace's address when ``argv`` enters one).
    """

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()  # command-line flags after ``serve``
    module: str = "tablestream"  # ``python -m MODULE serve``; tests.leakyserver for controls
    argv: Sequence[str] = ()  # instead of ``python -m MODULE serve ARGS``
    cwd: Path | None = None
    port: int = field(default_factory=free_port)
    stop_timeout: float = 15.0  # SIGTERM, then this long for the drain, then SIGKILL
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        env = {
            **os.environ,
            "TABLESTREAM_HOST": self.host,
            **self.env,
            "TABLESTREAM_PORT": str(self.port),
        }
        argv = list(self.argv) or [sys.executable, "-m", self.module, "serve", *self.args]
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,
        )
        self.url = f"http://{self.host}:{self.port}"
        try:
            wait_ready(self.url, proc=self.proc)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server process and its children (the processes of ``--processes``)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        kids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [self.pid, *kids]

    def rss(self) -> int:
        return sum(_status_bytes(pid, "VmRSS") for pid in self.pids())

    def peak(self) -> int:
        """Peak resident memory since start or the last ``reset_peak`` (the kernel's VmHWM)."""
        return sum(_status_bytes(pid, "VmHWM") for pid in self.pids())

    def reset_peak(self) -> None:
        for pid in self.pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def settle(self, seconds: float = 1.5) -> None:
        """Give the service's idle work (the heap trim after the last stream) time to run."""
        time.sleep(seconds)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the parent passes it on to its children
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
