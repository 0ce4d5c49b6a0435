"""waitress in a thread of the test process, around an app a test built (to inject tables).

It listens on 127.0.0.1 only, on a free port, and is stopped by the fixture that started it.
A real ``tablestream serve`` process comes from ``tablestream.testing.ServerProcess``, the harness
tests, benchmarks, load tests and docs share; `clean_copy` gives the checkout as a clone would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import waitress
from flask import Flask

from tablestream.server.connections import waitress_options
from tablestream.testing import wait_ready

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "ThreadServer", "clean_copy", "closed_by_server", "serve_with", "wait_for"]


def wait_for(predicate, timeout: float, what: str, step: float = 0.02):
    """Poll ``predicate`` until it returns something true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(step)
    raise TimeoutError(f"{what} not seen within {timeout} s")


def clean_copy(dest: Path) -> Path:
    """The checkout's tracked and new files (nothing git ignores), copied to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


THREADS = 16  # worker threads of a test server in this process, unless it asks for more


@dataclass
class ThreadServer:
    """waitress serving ``app`` from a thread of the test process."""

    app: Flask
    options: dict

    def __post_init__(self) -> None:
        # The app's own waitress settings (limits, buffers), so tests exercise what serve uses.
        options = waitress_options(self.app.extensions["tablestream"].settings)
        # Plain waitress starts every worker thread at once, where `serve`'s pool starts them as
        # tasks need them (service/server/workers.py): hundreds per test server would exhaust
        # the test process, so a test server that does not ask for a count gets a few.
        options["threads"] = min(options["threads"], THREADS)
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


def serve_with(process_server, settings_for, **overrides: str):
    """A real `tablestream serve` with the test settings and ``overrides`` (setting names)."""
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for(**overrides).items()}
    return process_server(**env)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Wait up to ``within`` s for the server to close ``sock``; True when it did."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False
