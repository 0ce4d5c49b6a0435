"""One client connection as tablestream keeps it: waitress's channel with the clocks it lacks.

waitress's ``HTTPChannel`` reads a connection's requests and writes its responses; it keeps no
record of how long the connection has waited for a request, or how fast a header is arriving.
``GuardedChannel`` adds that record (``waiting_since``, ``header_bytes``, ``header_began``) and
answers one question from it, ``overdue()``, which the server's loop asks once a second
(``tcpserver.py``) and the rules of ``deadlines.py`` decide. A channel being served, queued or
still sending is never overdue. It also counts itself in the server's per-address count from
its creation to ``del_channel`` (for the cap of ``clientcap.py``), sends through the chunk queue
of ``outbuf.py``, and keeps the kernel's unsent bytes low (``TCP_NOTSENT_LOWAT``) until a cut
stream's marker must go at once (``hand_over``). No I/O of its own beyond waitress's.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from .admission import NOT_EXPECTED
from .deadlines import Deadlines
from .outbuf import ChannelOutput
from .parsing import RequestParser

__all__ = ["EXPECTED_KEY", "GuardedChannel", "settling_expected"]

EXPECTED_KEY = "tablestream.expected"
"""The WSGI environ key of a stream request's ``Expected`` count (service/server/door.py)."""

# Unsent bytes the kernel holds for a connection before it says "not writable" (Linux's
# TCP_NOTSENT_LOWAT; unset, a slow reader's socket took ~4 MB and signalled room only when a
# third of that had gone, so waitress's buffer drained in bursts seconds apart). A cut stream's
# connection has the limit lifted (hand_over), so its marker can leave waitress's buffer for
# the kernel's, which still delivers it after the process has exited.
NOTSENT_LOWAT = 128 * 1024
NOTSENT_UNLIMITED = 2**31 - 1


def settling_expected(app: Any) -> Any:
    """``app``, settling the request's ``Expected`` count when its status is decided
    (``start_response``): before the answer goes out, so a client that reads a 404 and asks
    again at once is not judged against a stream that never was. The request's ``close``
    settles it too, for a request that never got that far."""

    def settled(environ: dict[str, Any], start_response: Any) -> Any:
        expected = environ.get(EXPECTED_KEY, NOT_EXPECTED)

        def start(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            expected.settle()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return settled


class _Task(WSGITask):
    """waitress's WSGI task; the environ also carries the request's ``Expected`` count, which
    the view settles when it takes its admission decision."""

    def get_environment(self) -> dict[str, Any]:
        environ = super().get_environment()
        environ[EXPECTED_KEY] = self.request.expected
        return environ


class GuardedChannel(ChannelOutput, HTTPChannel):
    """waitress's channel with a request-waiting clock, a header rate and a per-address count."""

    parser_class = RequestParser
    task_class = _Task

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


def _notsent_lowat(sock: socket.socket, limit: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, not TCP, or closed
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, limit)
