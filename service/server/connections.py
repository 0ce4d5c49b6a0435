"""The waitress server tablestream runs: waitress, plus the deadlines and the drain it lacks.

waitress reads requests in one loop thread and gives complete ones to its worker threads. What
it does not have, and hostile or unlucky traffic needs, is added here by subclassing its server
and channel (the hooks waitress itself exposes: ``channel_class``, ``parser_class``, ``run``):

- **An event loop that pays per event, not per connection** (service/server/eventloop.py):
  waitress's loop asked every open connection for its interest on every pass, so 10,000 idle
  sockets made each pass cost tens of milliseconds. Accepts are taken in batches.
- **Deadlines for a request header, at a minimum rate, and for idle kept-alive connections**
  (service/server/deadlines.py). waitress's ``channel_timeout`` counts from the last byte
  received, so a client that trickles one header byte every few seconds (slowloris) kept its
  connection for ever, and ~200 of them filled the connection limit.
- **At the connection limit the oldest connection waiting for a request is dropped** for the
  new one, so the process never stops accepting because of half-open requests.
- **A cap per client address at accept** (``TABLESTREAM_CONNECTIONS_PER_CLIENT``, like nginx's
  ``limit_conn``): one address cannot take every connection slot; its connection over the cap
  is reset before a byte is read. The trusted proxy's address is exempt (it limits per client).
- **An honest drain**: ``stop_listening()`` (called on SIGTERM) closes this process's listening
  socket at once, from the loop thread, so new connections are refused instead of queueing in the
  kernel until the process exits. With ``--processes`` every child and the parent hold the same
  socket: a retiring child closes only its own descriptor and its siblings go on accepting.
- **``Expect: 100-continue`` on a request without a body** is answered. waitress 3.0.2 sends
  ``100 Continue`` and then marks the (already complete) request incomplete again, so it is never
  served and the connection hangs until the channel timeout (tests/test_availability.py shows it
  against plain waitress). A request with no body has nothing to continue to: the header is
  dropped (in service/server/parsing.py).
- **A malformed request is answered at once** (service/server/parsing.py): waitress's parser
  waits for the end of a header block that garbage never sends, so a bad request held its
  connection in silence until the header deadline.

The checks run in the loop thread once a second (``_tick``), the same thread that reads and
closes channels, so they never race with it; a channel being served is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from ..config import Settings
from ..stream.body import StreamAborted
from .allocator import give_back_memory
from .clientcap import PER_CLIENT, ClientCap, reset
from .deadlines import AT_LIMIT, CHANNEL_TIMEOUT, Deadlines
from .eventloop import ChannelMap, EpollLoop
from .outbuf import ChannelOutput
from .parsing import RequestParser
from .workers import Workers

__all__ = ["ClientCap", "Deadlines", "GuardedServer", "make_server", "waitress_options"]

log = logging.getLogger("tablestream")

HEALTH_PATH = "/healthz"
# Unsent bytes the kernel holds for a connection before it says "not writable" (Linux's
# TCP_NOTSENT_LOWAT; unset, a slow reader's socket took ~4 MB and signalled room only when a
# third of that had gone, so waitress's buffer drained in bursts seconds apart). A cut stream's
# connection has the limit lifted (hand_over), so its marker can leave waitress's buffer for
# the kernel's, which still delivers it after the process has exited.
NOTSENT_LOWAT = 128 * 1024
NOTSENT_UNLIMITED = 2**31 - 1
TICK_S = 1.0  # how often deadlines are checked; a deadline is kept to within about this
# Connections accepted per readiness event of the listener: a burst of connects (a flood, or a
# probe behind one) is taken from the kernel's queue in one pass, not one per loop pass.
ACCEPT_BATCH = 64
TRIM_AFTER = 1000  # connections gone since the peak before the heap is trimmed


class _GuardedChannel(ChannelOutput, HTTPChannel):
    parser_class = RequestParser

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Any, map=None) -> None:
        self.waiting_since = time.monotonic()  # connect, first byte of a request, or last reply
        self.header_bytes = 0  # bytes of the request header being waited for, since then
        self.header_began = 0.0  # when the first of those bytes came
        _notsent_lowat(sock, NOTSENT_LOWAT)
        self.served = False
        super().__init__(server, sock, addr, adj, map)
        self._use_chunk_queue()
        self.counted_host = addr[0]  # in the server's per-address count until del_channel
        server.opened_from(self.counted_host)

    def del_channel(self, map=None) -> None:
        host = self.__dict__.pop("counted_host", None)  # once, however often it is called
        if host is not None:
            self.server.closed_from(host)
        super().del_channel(map)

    def hand_over(self) -> None:
        """Let the kernel take everything queued for this client (the stream was cut)."""
        _notsent_lowat(self.socket, NOTSENT_UNLIMITED)

    def received(self, data: bytes) -> bool:
        if self.request is None and data and self.served:
            # The next request on a kept-alive connection: its idle wait was bounded by the
            # keep-alive timeout, its header has the header deadline from its first byte (as
            # Go's server does). A first request's deadline counts from the connect.
            self.waiting_since = time.monotonic()
            self.header_bytes = 0
        if not self.requests:
            if not self.header_bytes:
                self.header_began = time.monotonic()
            self.header_bytes += len(data)
        return super().received(data)

    def service(self) -> None:
        try:
            super().service()
        finally:
            self.served = True
            self.waiting_since = time.monotonic()

    def overdue(self, now: float, deadlines: Deadlines) -> str:
        """Why this channel should be closed now ('' if it should not): a close reason."""
        if self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed:
            return ""  # being served, queued, or still sending: not idle
        awaiting_header = self.request is not None or not self.served
        return deadlines.overdue(
            now - self.waiting_since,
            self.header_bytes if awaiting_header else None,
            now - self.header_began,
        )


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server on an epoll loop, with deadlines, a per-address cap and a drain."""

    channel_class = _GuardedChannel

    def __init__(
        self,
        application: Any,
        sock: socket.socket,
        adj: Adjustments,
        deadlines: Deadlines | None = None,
        cap: ClientCap | None = None,
    ) -> None:
        self.cap = cap or ClientCap()
        self.per_address: dict[str, int] = {}  # open connections by client address
        self.deadlines = deadlines or Deadlines()
        self._stop_requested = False
        self._after_stop: Callable[[], None] | None = None  # what the loop does after a stop
        self._probes: list[Any] = []  # channels holding a liveness probe to answer in the loop
        self._peak_channels = 0  # the most connections held since the heap was last trimmed
        self.closed_for_deadline = 0  # connections closed by the deadlines (for tests and logs)
        dispatcher = Workers()
        dispatcher.set_thread_count(adj.threads)
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        channels = ChannelMap()
        self.loop = EpollLoop(channels)
        super().__init__(
            application,
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
        """A liveness probe is answered in the loop thread, everything else by a worker.

        Under full-speed streams every worker hand-off waits for the GIL behind the rendering
        threads; answering ``/healthz`` where it was read saves that wait (it is a few hundred
        bytes, so the write never blocks the loop).
        """
        request = task.requests[0] if task.requests else None
        if (
            request is not None
            and not request.error
            and request.path == HEALTH_PATH
            and request.command in ("GET", "HEAD")
        ):
            self._probes.append(task)  # served after this poll, outside the channel's lock
            return
        super().add_task(task)

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
        try:
            while self._map:
                self.loop.poll(self.adj.asyncore_loop_timeout)
                while self._probes:
                    self._probes.pop().service()
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


def _notsent_lowat(sock: socket.socket, limit: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, not TCP, or closed
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, limit)


class _CutsAreNotCrashes(logging.Filter):
    """waitress logs every exception out of a response as a crash, with its traceback; a stream
    ended on purpose (``StreamAborted``: a cut, or a failed source) was already logged by its
    body as one line, so waitress's copy is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


_CUTS_ARE_NOT_CRASHES = _CutsAreNotCrashes()


def make_server(
    app: Any,
    sock: socket.socket,
    options: dict[str, Any],
    deadlines: Deadlines,
    cap: ClientCap | None = None,
) -> GuardedServer:
    """A GuardedServer on the listening socket ``sock`` with waitress ``options``."""
    adj = Adjustments(**{k: v for k, v in options.items() if k not in ("host", "port")})
    logging.getLogger("waitress").addFilter(_CUTS_ARE_NOT_CRASHES)  # once: filters are a set
    return GuardedServer(app, sock, adj, deadlines, cap)


def waitress_options(settings: Settings) -> dict[str, Any]:
    """The waitress adjustments ``tablestream serve`` runs with, from ``settings``."""
    return {
        "host": settings.host,
        "port": settings.port,
        "threads": settings.threads,
        "connection_limit": settings.connection_limit,
        "backlog": settings.backlog,
        "channel_timeout": settings.channel_timeout,
        "outbuf_high_watermark": settings.outbuf_high_watermark,
        "outbuf_overflow": settings.outbuf_overflow,
        "max_request_header_size": settings.max_request_header_size,
        "max_request_body_size": settings.max_request_body_size,
        "ident": settings.ident,
        "expose_tracebacks": False,
        # Forwarded headers are the app's business (access/peer.py applies waitress's own
        # proxy-header middleware and also needs the peer's address, which waitress's
        # rewriting would lose): waitress passes them through untouched.
        "clear_untrusted_proxy_headers": False,
    }
