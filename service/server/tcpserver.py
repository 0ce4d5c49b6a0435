"""The server's loop thread: accepting, liveness probes, the drain and the once-a-second tick.

``GuardedServer`` is waitress's ``TcpWSGIServer`` with its loop replaced (``run``) and its
accept widened. Everything here runs in the one loop thread that also reads and closes the
channels (``channel.py``), so the deadline checks never race with it: accepts in batches with
the per-address cap and, at the connection limit, the oldest waiting connection dropped;
``/healthz`` answered where it was read; the listening socket closed on ``stop_listening`` (the
drain); and ``_tick``, which closes overdue channels and gives a flood's heap back. How the
server is built from the settings is ``connections.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

from .admission import NOT_EXPECTED
from .allocator import give_back_memory
from .channel import GuardedChannel, settling_expected
from .clientcap import PER_CLIENT, ClientCap, reset
from .deadlines import AT_LIMIT, CHANNEL_TIMEOUT, Deadlines
from .door import Door
from .eventloop import ChannelMap, EpollLoop
from .workers import Workers

__all__ = ["GuardedServer"]

log = logging.getLogger("tablestream")

HEALTH_PATH = "/healthz"

TICK_S = 1.0  # how often deadlines are checked; a deadline is kept to within about this
# Connections accepted per readiness event of the listener: a burst of connects (a flood, or a
# probe behind one) is taken from the kernel's queue in one pass, not one per loop pass.
ACCEPT_BATCH = 64
# A pass with this many reads and accepts is a backlog: the requests it read wait (at most
# HOLD_S) for the passes after it before going to the workers; a stream's start waits for a
# pass that reads nothing, at most START_HOLD_S (GuardedServer._hand_over).
BACKLOG = 16
HOLD_S = 0.05
START_HOLD_S = 0.1
TRIM_AFTER = 1000  # connections gone since the peak before the heap is trimmed


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server on an epoll loop, with deadlines, a per-address cap and a drain."""

    channel_class = GuardedChannel

    def __init__(
        self,
        application: Any,
        sock: socket.socket,
        adj: Adjustments,
        deadlines: Deadlines | None = None,
        cap: ClientCap | None = None,
        door: Door | None = None,
    ) -> None:
        self.cap = cap or ClientCap()
        self.door = door  # stream requests refused before a worker sees them (door.py)
        self.per_address: dict[str, int] = {}  # open connections by client address
        self.deadlines = deadlines or Deadlines()
        self._stop_requested = False
        self._after_stop: Callable[[], None] | None = None  # what the loop does after a stop
        self._probes: list[Any] = []  # channels holding a liveness probe to answer in the loop
        self._refused: list[tuple[Any, bytes]] = []  # channels and the door's 503 for them
        self._held: list[Any] = []  # requests read in a backlog, for the workers (_hand_over)
        self._starts: list[Any] = []  # stream requests the door passed on, likewise
        self._held_since = {False: 0.0, True: 0.0}  # when each list's oldest was held
        self._accepted = 0  # connections accepted in this pass
        self._loop_ident: int | None = None  # the loop thread, once run() starts
        self._peak_channels = 0  # the most connections held since the heap was last trimmed
        self.closed_for_deadline = 0  # connections closed by the deadlines (for tests and logs)
        dispatcher = Workers()
        dispatcher.set_thread_count(adj.threads)
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        channels = ChannelMap()
        self.loop = EpollLoop(channels)
        self.loop.after_event = self._answer_in_loop
        super().__init__(
            settling_expected(application),
            map=channels,
            _sock=sock,
            dispatcher=dispatcher,
            adj=adj,
            bind_socket=False,
            sockinfo=sockinfo,
        )

    def readable(self) -> bool:
        """Accepting, also at the connection limit while a waiting connection can be dropped."""
        at_limit = self.accepting and len(self._map) >= self.adj.connection_limit
        if at_limit and self.loop.oldest_quiet() is not None:
            return True
        return super().readable()

    def handle_accept(self) -> None:
        """waitress's accept, in batches, with the per-address cap and the drop at the limit.

        An address over its cap is reset at once: closing costs the loop one accept and one
        close, and the connection holds nothing; a 503 would need its request read first,
        holding the slot the cap is there to keep free. The reset (SO_LINGER 0) leaves no
        TIME_WAIT or FIN_WAIT state behind a flood.
        """
        for _ in range(ACCEPT_BATCH):
            if len(self._map) >= self.adj.connection_limit and not self._drop_oldest_waiting():
                return
            try:
                accepted = self.accept()
                if accepted is None:
                    return
                conn, addr = accepted
                if self.cap.refuses(addr[0], self.per_address):
                    reset(conn)
                    self.cap.count(PER_CLIENT)
                    continue
                self.set_socket_options(conn)
                self._accepted += 1
            except OSError:  # as waitress: a socket already gone before it was set up
                if self.adj.log_socket_errors:
                    self.logger.warning("server accept() threw an exception", exc_info=True)
                return
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def _drop_oldest_waiting(self) -> bool:
        """Close the connection that has waited longest for a request; False if none waits."""
        channel = self.loop.oldest_quiet()
        if channel is None:
            return False
        self.deadlines.count(AT_LIMIT)
        log.debug("closing connection from %s: %s", channel.addr, AT_LIMIT)
        channel.handle_close()
        return True

    def opened_from(self, host: str) -> None:
        self.per_address[host] = self.per_address.get(host, 0) + 1

    def closed_from(self, host: str) -> None:
        left = self.per_address.get(host, 0) - 1
        if left > 0:
            self.per_address[host] = left
        else:
            self.per_address.pop(host, None)

    def add_task(self, task: Any) -> None:
        """A liveness probe, and a stream request the door refuses, are answered in the loop
        thread, everything else by a worker.

        Under full-speed streams every worker hand-off waits for the GIL behind the rendering
        threads; answering ``/healthz`` or a 503 where it was read saves that wait (a few
        hundred bytes, so the write never blocks the loop).
        """
        request = task.requests[0] if task.requests else None
        if request is not None and _is_probe(request):
            self._probes.append(task)  # served after this event, outside the channel's lock
            return
        if request is not None and self.door is not None:
            refusal = self.door.check(request, self.adj.ident)
            if refusal is not None:
                self._refused.append((task, refusal))  # sent after this event, as a probe is
                return
        if threading.get_ident() == self._loop_ident:
            starts = request is not None and request.expected is not NOT_EXPECTED
            held = self._starts if starts else self._held
            held.append(task)  # handed to a worker after this pass, or later (_hand_over)
            if len(held) == 1:
                self._held_since[starts] = time.monotonic()
            return
        super().add_task(task)

    def _hand_over(self, work: int) -> None:
        """Give the workers the requests held, when this pass (``work`` reads and accepts)
        says the loop has caught up.

        A worker that starts a stream takes the interpreter from this thread: a burst of 266
        stream requests, its ~30 admitted streams handed over as they were read, left the
        loop thread ~40 ms of the interpreter in the 430 ms it took to refuse the rest, and a
        burst that trickled in over 100 ms had its later 503s wait behind the streams started
        by its first requests. So a stream request the door passed on waits until a pass reads
        nothing (for at most ``START_HOLD_S``), and any other request while passes read
        ``BACKLOG`` or more (for at most ``HOLD_S``); the loop polls again at once meanwhile.
        The refusals, the probes and the reads of a burst come first, then its streams start;
        on a quiet server a stream waits one empty poll.
        """
        now = time.monotonic()
        if self._held and (work < BACKLOG or now - self._held_since[False] >= HOLD_S):
            held, self._held = self._held, []
            for task in held:
                super().add_task(task)
        if self._starts and (not work or now - self._held_since[True] >= START_HOLD_S):
            starts, self._starts = self._starts, []
            for task in starts:
                super().add_task(task)

    def _answer_in_loop(self) -> None:
        """Serve the probes and refusals ``add_task`` kept for this thread, and send each
        answer at once: it fits the socket's buffer, and the next pass may be far."""
        while self._refused:
            channel, response = self._refused.pop()
            with channel.requests_lock:
                for request in channel.requests:
                    request.close()
                channel.requests = []  # what else it sent is not read: it is closed
            sent = 0
            with contextlib.suppress(OSError):
                sent = channel.socket.send(response)
            if sent == len(response) or not channel.connected:
                channel.handle_close()
            else:  # the kernel took part (it never has, for a few hundred bytes): the loop sends
                channel.write_soon(response[sent:])
                channel.close_when_flushed = True
        while self._probes:
            channel = self._probes.pop()
            channel.service()
            if channel.connected:
                channel.handle_write()

    def stop_listening(self, then: Callable[[], None] | None = None) -> None:
        """Close the listening socket as soon as the loop wakes, then call ``then`` there.

        Safe in a signal handler: it sets two attributes and writes a byte to the trigger, and
        takes no lock. A handler runs in the main thread wherever that thread was, possibly
        inside a lock the handler's own work would need again; ``then`` runs in the loop
        between polls instead, where nothing is held.
        """
        self._after_stop = then
        self._stop_requested = True
        self.trigger._physical_pull()  # wakes poll(); takes no lock, unlike pull_trigger

    def maintenance(self, now: float) -> None:
        """waitress's own sweep is replaced by ``_tick`` (it also applies channel_timeout)."""

    def run(self) -> None:
        """waitress's loop, one poll at a time, with the deadline checks between polls."""
        next_tick = 0.0
        self._loop_ident = threading.get_ident()
        try:
            while self._map:
                self._accepted = 0
                busy = self._held or self._starts
                reads = self.loop.poll(0.0 if busy else self.adj.asyncore_loop_timeout)
                self._answer_in_loop()  # queued by a worker (a pipelined request) meanwhile
                self._hand_over(reads + self._accepted)
                if self._stop_requested and self._after_stop is not None:
                    after, self._after_stop = self._after_stop, None
                    after()
                if self._stop_requested and self.accepting:
                    self._close_listener()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    self._tick(now)
        except (SystemExit, KeyboardInterrupt):
            self.task_dispatcher.shutdown()
        finally:
            self.loop.close()

    def _give_back_memory(self) -> None:
        """After a crowd of connections has gone, hand the heap they used back to the kernel.

        Ten thousand channels take ~30 MiB. A closed channel is freed at once (no reference
        cycle on the client-close or deadline paths: checked with the GC off), but what it held
        above the small-object size (dict tables, buffers) sits in glibc's heap until
        ``malloc_trim``, and a full collection, which an idle process never runs, first frees
        what streams left in cycles. Without both, the process kept that RSS for good after a
        flood (66 MiB; 40 with them). Once the connections have fallen to half their peak (and
        by at least ``TRIM_AFTER``), both are done, once, in the loop thread (tens of ms).
        What stays is small-object arenas (docs/reliability.md, "RSS after the ... flood").
        """
        held = len(self.active_channels)
        self._peak_channels = max(self._peak_channels, held)
        if self._peak_channels - held >= TRIM_AFTER and held <= self._peak_channels // 2:
            give_back_memory()
            self._peak_channels = held

    def _close_listener(self) -> None:
        self.accepting = False
        self.del_channel()
        self.socket.close()
        log.info("listening socket closed: new connections are refused")

    def _tick(self, now: float) -> None:
        self._give_back_memory()
        idle_cutoff = time.time() - self.adj.channel_timeout  # waitress's clock for this one
        for channel in list(self.active_channels.values()):
            why = channel.overdue(now, self.deadlines)
            if not why and not channel.requests and channel.last_activity < idle_cutoff:
                why = CHANNEL_TIMEOUT
            if why:
                self.closed_for_deadline += 1
                self.deadlines.count(why)
                log.debug("closing connection from %s: %s", channel.addr, why)
                channel.will_close = True
                self.loop.touch(channel._fileno)  # a quiet channel: the loop must look again


def _is_probe(request: Any) -> bool:
    return not request.error and request.path == HEALTH_PATH and request.command in ("GET", "HEAD")
