"""SIGTERM with streams in flight, watched from the outside as a load balancer would.

A balancer learns that an instance is going away in two ways: its readiness check fails (here
``/readyz`` on a connection it already keeps open) and new connections are refused. This
measures both from the moment the signal is sent, and whether the streams already running still
finish within the shutdown grace.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tablestream.testing import httpraw
from tablestream.testing.metricsread import value

__all__ = ["DrainFigures", "drain_under_load", "in_progress"]

ATTEMPT_TIMEOUT = 0.2  # a connection that neither refuses nor answers in this long is hanging
READYZ_INTERVAL = 0.05
READYZ_SECONDS = 1.0  # how long after the signal /readyz is asked on the kept-alive connection


@dataclass
class DrainFigures:
    refused_after: float | None = None  # seconds from SIGTERM to a refused (or 503) connection
    refused_how: str = ""
    readyz: list[int | None] = field(default_factory=list)  # statuses after the signal
    streams: int = 0
    finished: list[float] = field(default_factory=list)  # seconds after the signal, complete
    exited_after: float | None = None
    signalled_at: float = 0.0  # monotonic() when SIGTERM was sent


def _new_connection_refused(host: str, port: int) -> str:
    """'refused', '503', or '' when the new connection was accepted and answered or hung."""
    try:
        sock = socket.create_connection((host, port), timeout=ATTEMPT_TIMEOUT)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return ""
    with sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
        except ConnectionResetError:
            return "refused"
        except OSError:
            return ""
        return "503" if head.startswith(b"HTTP/1.1 503") else ""


def _readyz(connection: http.client.HTTPConnection) -> int | None:
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None


def in_progress(base_url: str) -> float | None:
    """``tablestream_streams_in_progress`` now, or None when /metrics does not answer."""
    try:
        return value(f"{base_url}/metrics", "tablestream_streams_in_progress")
    except OSError:
        return None


def drain_under_load(
    proc: subprocess.Popen, base_url: str, stream_path: str, streams: int, grace: float
) -> DrainFigures:
    """Start ``streams`` full-speed readers, send SIGTERM to ``proc``, watch the door close."""
    parts = urlsplit(base_url)
    host, port = parts.hostname, parts.port
    stream_url = base_url + stream_path
    figures = DrainFigures(streams=streams)
    signalled = threading.Event()
    signal_at = [0.0]

    def read() -> None:
        try:
            response = httpraw.get(stream_url, keep=False, timeout=grace + 10)
        except OSError:
            return
        if response.terminated and signalled.is_set():
            figures.finished.append(time.monotonic() - signal_at[0])

    readers = [threading.Thread(target=read, daemon=True) for _ in range(streams)]
    for reader in readers:
        reader.start()
    keep_alive = http.client.HTTPConnection(host, port, timeout=2)
    if _readyz(keep_alive) != 200:
        raise RuntimeError("/readyz was not 200 before the signal")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (in_progress(base_url) or 0) < streams:
        time.sleep(0.05)  # bounded poll until every reader's stream runs
    signal_at[0] = figures.signalled_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    signalled.set()
    bound = signal_at[0] + grace + 5
    next_readyz = signal_at[0]
    while time.monotonic() < bound:
        now = time.monotonic()
        if now >= next_readyz and now - signal_at[0] <= READYZ_SECONDS:
            status = _readyz(keep_alive)
            figures.readyz.append(status)
            next_readyz = now + READYZ_INTERVAL if status is not None else float("inf")
        if figures.refused_after is None:
            how = _new_connection_refused(host, port)
            if how:
                figures.refused_after = time.monotonic() - signal_at[0]
                figures.refused_how = how
        elif time.monotonic() - signal_at[0] > READYZ_SECONDS:
            break
        time.sleep(0.005)
    keep_alive.close()
    for reader in readers:
        reader.join(timeout=max(0.1, signal_at[0] + grace + 10 - time.monotonic()))
    try:
        proc.wait(timeout=max(0.1, signal_at[0] + grace + 15 - time.monotonic()))
        figures.exited_after = time.monotonic() - signal_at[0]
    except subprocess.TimeoutExpired:  # still running: the caller's stop() ends it
        pass
    return figures
