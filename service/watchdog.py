"""Streams that stop moving, and streams still running at shutdown, are cut from outside.

A client that stops reading but keeps its socket open blocks the worker thread inside
waitress's ``write_soon`` (it waits on a condition until the output buffer drains) for as long
as the socket lives; waitress's ``channel_timeout`` only reaps idle channels, not busy ones. The
watchdog sees each stream's progress through a ``StreamObserver`` (one timestamp per chunk) and,
after ``TABLESTREAM_WRITE_TIMEOUT`` seconds without a chunk going out, shuts the socket down. It
uses ``shutdown()``, not ``close()``: the descriptor stays valid for waitress's poll loop, which
then sees the end of the connection, closes the channel in its own thread and wakes the worker,
whose stream ends through the normal ``close()`` path (source closed, counted client_aborted).

On SIGTERM the server stops accepting, in-flight streams get ``TABLESTREAM_SHUTDOWN_GRACE``
seconds to finish, the rest are cut the same way, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .streaming import StreamObserver

__all__ = ["Watchdog", "install_graceful_shutdown", "listening_servers"]

log = logging.getLogger("tablestream")


class _Entry:
    __slots__ = ("channel", "last", "table")

    def __init__(self, table: str, channel: Any) -> None:
        self.table = table
        self.channel = channel
        self.last = time.monotonic()


class _Progress:
    """The observer: one timestamp per chunk; unregisters when the stream ends."""

    def __init__(self, watchdog: Watchdog, entry: _Entry) -> None:
        self._watchdog = watchdog
        self._entry = entry

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        self._entry.last = time.monotonic()

    def finished(self, outcome: str, rows_read: int) -> None:
        self._watchdog._remove(self._entry)


class Watchdog:
    def __init__(
        self,
        write_timeout: float,
        interval: float = 0.5,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        self.write_timeout = write_timeout
        self.interval = interval
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._entries: set[_Entry] = set()
        self._started = False
        self._draining_until: float | None = None
        self._on_drained: Callable[[], None] | None = None

    def observer(self, table: str, environ: dict[str, Any]) -> StreamObserver:
        """Watch one stream; its waitress channel is found through the disconnect hook."""
        hook = environ.get("waitress.client_disconnected")
        entry = _Entry(table, getattr(hook, "__self__", None))
        with self._lock:
            self._entries.add(entry)
        self.start()
        return _Progress(self, entry)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._entries)

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="tablestream-watchdog", daemon=True).start()

    def drain(self, grace: float, on_drained: Callable[[], None]) -> None:
        """Give in-flight streams ``grace`` seconds, cut the rest, then call ``on_drained``."""
        self._draining_until = time.monotonic() + grace
        self._on_drained = on_drained
        self.start()

    def _remove(self, entry: _Entry) -> None:
        with self._lock:
            self._entries.discard(entry)

    def _run(self) -> None:
        was_busy = False
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:
                entries = list(self._entries)
            if was_busy and not entries and self._on_idle is not None:
                self._on_idle()
            was_busy = bool(entries)
            for entry in entries:
                if now - entry.last > self.write_timeout:
                    log.warning(
                        "stream of %s made no progress for %.0f s; cutting the connection",
                        entry.table,
                        now - entry.last,
                    )
                    _cut(entry)
            if self._draining_until is not None:
                if entries and now >= self._draining_until:
                    log.warning("shutdown grace over; cutting %d streams", len(entries))
                    for entry in entries:
                        _cut(entry)
                if not entries and self._on_drained is not None:
                    on_drained, self._on_drained = self._on_drained, None
                    on_drained()


def _cut(entry: _Entry) -> None:
    channel = entry.channel
    sock = getattr(channel, "socket", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)
    server = getattr(channel, "server", None)
    if server is not None:
        server.pull_trigger()
    entry.last = float("inf")  # cut once


def install_graceful_shutdown(servers: list[Any], watchdog: Watchdog, grace: float) -> None:
    """SIGTERM: stop accepting, drain in-flight streams for ``grace`` s, then stop the loop."""

    def stop_loop() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # waitress's run() exits cleanly on KeyboardInterrupt

    def on_sigterm(signum: int, _frame: object) -> None:
        log.info(
            "SIGTERM: no new connections; %d streams in flight get up to %.0f s",
            watchdog.in_flight(),
            grace,
        )
        for server in servers:
            server.accepting = False
        watchdog.drain(grace, stop_loop)

    signal.signal(signal.SIGTERM, on_sigterm)
    # stop_loop relies on SIGINT raising KeyboardInterrupt, which Python only arranges when
    # SIGINT was not ignored at start: a server started with `&` from a script or under nohup
    # logged the SIGTERM and then never exited.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def listening_servers(server: Any) -> list[Any]:
    """The dispatchers that accept connections (one, or several behind a MultiSocketServer)."""
    if hasattr(server, "accepting"):
        return [server]
    return [s for s in getattr(server, "map", {}).values() if hasattr(s, "accepting")]
