"""Streams that stop moving, crawl, or outlive a shutdown are ended from outside.

A client that stops reading but keeps its socket open blocks the worker thread inside
waitress's ``write_soon`` (it waits on a condition until the output buffer drains) for as long
as the socket lives; waitress's ``channel_timeout`` only reaps idle channels, not busy ones. The
watchdog sees each stream's progress through a ``StreamObserver`` (bytes and a timestamp per
chunk) and ends a stream in two ways:

- **Asked to stop** (``Chunker.stop`` through the environ's ``STOP_KEY``): the stream ends after
  the batch of rows it is cutting up, with its format's error marker, and the connection is cut
  without the terminating chunk. Used when the shutdown grace runs out and when a client reads,
  but slower than ``TABLESTREAM_MIN_SEND_RATE`` over ``TABLESTREAM_SEND_RATE_WINDOW``: something
  can still be written, so the client is told. The marker is queued behind what waitress holds
  for the client already (at most the output buffer's watermark and a chunk), and gets
  ``TABLESTREAM_CUT_MARKER_TIMEOUT`` seconds of its own, counted from the cut, to be handed to
  the connection: the process waits for it even in a drain. Once in the kernel's socket buffer
  it reaches the client after the process has exited (close() sends FIN after the data). A
  stream still not ended then (a client slower than the queued bytes allow) is shut down at the
  socket: its body ends where the kernel stopped, and the stream still counts as ``cut``.
- **Shut down at the socket**: after ``TABLESTREAM_WRITE_TIMEOUT`` seconds with no chunk
  accepted, nothing more can reach the client anyway. ``shutdown()``, not ``close()``: the
  descriptor stays valid for waitress's poll loop, which then sees the end of the connection,
  closes the channel in its own thread and wakes the worker, whose stream ends through the
  normal ``close()`` path (source closed, counted client_aborted).

Both rules count only time in which the client is the bottleneck, i.e. waitress holds unsent
bytes for it; a stream waiting on a slow database query is not the client's fault.
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

from ..stream.body import STOP_KEY, StreamObserver

__all__ = ["Watchdog", "install_graceful_shutdown"]

log = logging.getLogger("tablestream")


class _Entry:
    __slots__ = ("bound_since", "channel", "cut_at", "environ", "last", "samples", "sent", "table")

    def __init__(self, table: str, channel: Any, environ: dict[str, Any]) -> None:
        self.table = table
        self.channel = channel
        self.environ = environ
        self.last = time.monotonic()
        self.sent = 0
        self.samples: list[tuple[float, int]] = []  # (time, bytes sent) over the rate window
        self.bound_since: float | None = None  # since when the client is the bottleneck
        self.cut_at: float | None = None  # asked to stop; shut the socket down at this time

    def client_bound(self) -> bool:
        """Does waitress hold unsent bytes for this client (so the client sets the pace)?"""
        return getattr(self.channel, "total_outbufs_len", 1) > 0


class _Progress:
    """The observer: bytes and a timestamp per chunk; unregisters when the stream ends."""

    def __init__(self, watchdog: Watchdog, entry: _Entry) -> None:
        self._watchdog = watchdog
        self._entry = entry

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        entry = self._entry
        entry.last = time.monotonic()
        entry.sent += nbytes

    def finished(self, outcome: str, rows_read: int) -> None:
        self._watchdog._remove(self._entry)


class Watchdog:
    def __init__(
        self,
        write_timeout: float,
        interval: float = 0.5,
        on_idle: Callable[[], object] | None = None,
        min_rate: int = 0,
        rate_window: float = 60.0,
        marker_timeout: float = 5.0,
    ) -> None:
        self.write_timeout = write_timeout
        self.marker_timeout = marker_timeout
        self.interval = interval
        self.min_rate = min_rate
        self.rate_window = rate_window
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._entries: set[_Entry] = set()
        self._started = False
        self._draining_until: float | None = None
        self._on_drained: Callable[[], None] | None = None
        # Channels of ended streams that still hold unsent bytes (the cut marker among them):
        # the time after which each is no longer waited for, and the table of a cut stream.
        self._flushing: dict[Any, tuple[float, str]] = {}

    def observer(self, table: str, environ: dict[str, Any]) -> StreamObserver:
        """Watch one stream; its waitress channel is found through the disconnect hook."""
        hook = environ.get("waitress.client_disconnected")
        entry = _Entry(table, getattr(hook, "__self__", None), environ)
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
            cut = entry.cut_at is not None and entry.cut_at != float("inf")
            if entry.channel is not None and entry.client_bound():
                until = entry.cut_at if cut else time.monotonic() + self.marker_timeout
                self._flushing[entry.channel] = (until, entry.table if cut else "")
            elif cut:
                log.info("cut stream of %s: its error marker went out", entry.table)

    def _still_flushing(self, now: float) -> bool:
        """Does an ended stream's channel still hold bytes for its client (for a bounded time)?

        A stream's iterator ends before waitress has sent what it wrote last, the error marker
        of a cut stream included; exiting then would drop those bytes with the process.
        """
        with self._lock:
            for channel, (until, cut_table) in list(self._flushing.items()):
                sent = not channel.total_outbufs_len
                if not (now >= until or not channel.connected or sent):
                    continue
                del self._flushing[channel]
                if cut_table and sent:
                    log.info("cut stream of %s: its error marker went out", cut_table)
                elif cut_table:
                    log.warning(
                        "cut stream of %s: its error marker did not go out within %g s (%d "
                        "bytes still queued; the client reads too slowly or left)",
                        cut_table,
                        self.marker_timeout,
                        channel.total_outbufs_len,
                    )
            return bool(self._flushing)

    def _run(self) -> None:
        was_busy = False
        while True:
            time.sleep(self.interval)
            was_busy = self._sweep(time.monotonic(), was_busy)

    def _sweep(self, now: float, was_busy: bool) -> bool:
        """One round of checks; True while streams run.

        A method of its own so that nothing of it outlives the round: a loop variable left
        bound to the last stream's entry kept its channel and environ (allocated during the
        traffic) alive while the server idled, and with them allocator arenas (allocator.py).
        """
        with self._lock:
            entries = list(self._entries)
        if was_busy and not entries and self._on_idle is not None:
            self._on_idle()
        draining = self._draining_until is not None
        grace_over = draining and now >= self._draining_until  # type: ignore[operator]
        if grace_over and any(entry.cut_at is None for entry in entries):
            log.warning("shutdown grace over; cutting %d streams", len(entries))
        for entry in entries:
            self._check(entry, now, grace_over)
        flushing = self._still_flushing(now)
        if draining and not entries and not flushing and self._on_drained is not None:
            on_drained, self._on_drained = self._on_drained, None
            on_drained()
        return bool(entries)

    def _check(self, entry: _Entry, now: float, grace_over: bool) -> None:
        if entry.cut_at is not None:
            if now >= entry.cut_at:
                _shut(entry)
            return
        if grace_over:
            _stop(entry, now + self.marker_timeout, "the server is shutting down")
            return
        bound = entry.client_bound()
        if now - entry.last > self.write_timeout and bound:
            log.warning(
                "stream of %s made no progress for %.0f s; cutting the connection",
                entry.table,
                now - entry.last,
            )
            _shut(entry)
            return
        if not self.min_rate:
            return
        entry.bound_since = (entry.bound_since or now) if bound else None
        samples = entry.samples
        samples.append((now, entry.sent))
        window = self.rate_window
        while len(samples) > 1 and samples[1][0] <= now - window:
            del samples[0]
        since, sent_then = samples[0]
        if (
            entry.bound_since is not None
            and now - entry.bound_since >= window
            and now - since >= window
            and (entry.sent - sent_then) < self.min_rate * window
        ):
            rate = (entry.sent - sent_then) / (now - since)
            log.warning(
                "stream of %s: the client took %.0f B/s over %.0f s, below %d B/s; cutting it",
                entry.table,
                rate,
                now - since,
                self.min_rate,
            )
            _stop(
                entry,
                now + self.marker_timeout,
                f"the client read slower than {self.min_rate} bytes/s",
            )


def _stop(entry: _Entry, shut_at: float, reason: str) -> None:
    """Ask the stream to end at a row boundary with its error marker; shut it at ``shut_at``."""
    stop = entry.environ.get(STOP_KEY)
    if stop is None:
        _shut(entry)
        return
    stop(reason)
    entry.cut_at = shut_at
    hand_over = getattr(entry.channel, "hand_over", None)
    if hand_over is not None:
        hand_over()
    server = getattr(entry.channel, "server", None)
    if server is not None:
        server.pull_trigger()  # let the loop flush, so a waiting write can go on


def _shut(entry: _Entry) -> None:
    channel = entry.channel
    entry.cut_at = float("inf")  # cut once
    sock = getattr(channel, "socket", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)
    server = getattr(channel, "server", None)
    if server is not None:
        server.pull_trigger()


def install_graceful_shutdown(server: Any, runtime: Any, grace: float) -> None:
    """SIGTERM: refuse new work at once, drain in-flight streams for ``grace`` s, then exit.

    From the signal on ``/readyz`` answers 503 and new stream requests on kept-alive
    connections get 503 (the admission is draining), and the listening socket is closed, so a
    balancer's new connection is refused and retried elsewhere within milliseconds.
    """

    def stop_loop() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # waitress's run() exits cleanly on KeyboardInterrupt

    def drain() -> None:  # in the loop thread, after the listener is closed
        log.info(
            "SIGTERM: listening socket closing, not ready; %d streams in flight get up to %g s",
            runtime.watchdog.in_flight(),
            grace,
        )
        runtime.watchdog.drain(grace, stop_loop)

    def on_sigterm(signum: int, _frame: object) -> None:
        # Only what takes no lock: the handler may have interrupted the main thread inside one
        # (a server once logged nothing and never exited after a SIGTERM, 2 CI runs in 3).
        runtime.admission.draining = True
        server.stop_listening(then=drain)

    signal.signal(signal.SIGTERM, on_sigterm)
    # stop_loop relies on SIGINT raising KeyboardInterrupt, which Python only arranges when
    # SIGINT was not ignored at start: a server started with `&` from a script or under nohup
    # logged the SIGTERM and then never exited.
    signal.signal(signal.SIGINT, signal.default_int_handler)
