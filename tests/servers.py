"""Real waitress servers for tests: in a thread (to inject test tables) or as a process (RSS).

Both listen on 127.0.0.1 only, on a free port, and are stopped by the fixtures that start them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import waitress
from flask import Flask

from service.server.connections import waitress_options

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "ProcessServer",
    "ThreadServer",
    "free_port",
    "rss_bytes",
    "temp_file_bytes",
    "wait_for",
    "wait_ready",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
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
    raise TimeoutError(f"{url} not ready after {timeout}s")


def wait_for(predicate, timeout: float, what: str, step: float = 0.02):
    """Poll ``predicate`` until it returns something true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(step)
    raise TimeoutError(f"{what} not seen within {timeout} s")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def temp_file_bytes(pid: int) -> int:
    """Bytes in the process's open, deleted files: waitress's overflow buffers (RSS misses them)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if os.readlink(path).endswith("(deleted)"):
                total += os.stat(path).st_size
        except OSError:
            continue
    return total


@dataclass
class ThreadServer:
    """waitress serving ``app`` from a thread of the test process."""

    app: Flask
    options: dict

    def __post_init__(self) -> None:
        # The app's own waitress settings (limits, buffers), so tests exercise what serve uses.
        options = waitress_options(self.app.extensions["tablestream"].settings)
        options.update(self.options, host="127.0.0.1", port=0)
        self.server = waitress.create_server(self.app, **options)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_ready(self.url)

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            # close() from another thread pulls descriptors out from under select(): expected
            # once stop() has begun, a real error otherwise.
            if not self._stopping:
                raise

    def stop(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            type(c).__name__ == "HTTPChannel" for c in list(self.server._map.values())
        ):
            time.sleep(0.02)  # let streams still being torn down finish first
        self._stopping = True
        # Closed by the loop thread itself, woken by the trigger: the loop then ends at once
        # instead of after its next 1 s poll timeout.
        self.server.trigger.pull_trigger(self.server.close)
        self.thread.join(timeout=5)
        if self.thread.is_alive():
            self.server.close()


@dataclass
class ProcessServer:
    """``tablestream serve`` as its own process, configured through the environment."""

    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    module: str = "service"  # run as ``python -m MODULE serve``; tests.leakyserver for controls
    args: tuple[str, ...] = ()  # command-line flags after ``serve``

    def __post_init__(self) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            **self.env,
            "TABLESTREAM_HOST": "127.0.0.1",
            "TABLESTREAM_PORT": str(self.port),
        }
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "serve", *self.args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_ready(self.url, proc=self.proc)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
