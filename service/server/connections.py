"""The waitress server tablestream runs: waitress, plus the deadlines and the drain it lacks.

waitress reads requests in one loop thread and gives complete ones to its worker threads. What
it does not have, and hostile or unlucky traffic needs, is added by subclassing its server
(``GuardedServer``, service/server/tcpserver.py) and channel (``GuardedChannel``,
service/server/channel.py), through the hooks waitress itself exposes (``channel_class``,
``parser_class``, ``run``). This module builds that server for ``tablestream serve`` (waitress's
options from the settings, its ``Adjustments``, its log filter), and is the map of the rest:

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
- **A stream request with no slot is refused in the loop thread** (service/server/door.py):
  its 503 is sent where the request was read, with no worker thread, Flask or access check,
  and a burst is judged as one (the stream requests already passed on count as admitted).
  Worker threads are started by a starter thread (service/server/workers.py), never by the
  loop thread, which used to wait ~10 ms of a busy interpreter for each.
- **A malformed request is answered at once** (service/server/parsing.py): waitress's parser
  waits for the end of a header block that garbage never sends, so a bad request held its
  connection in silence until the header deadline.

The checks run in the loop thread once a second (``GuardedServer._tick``), the same thread that
reads and closes channels, so they never race with it; a channel being served is never touched.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from waitress.adjustments import Adjustments

from ..config import Settings
from ..stream.body import StreamAborted
from .clientcap import ClientCap
from .deadlines import Deadlines
from .door import Door
from .tcpserver import GuardedServer

__all__ = ["ClientCap", "Deadlines", "Door", "GuardedServer", "make_server", "waitress_options"]


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
    door: Door | None = None,
) -> GuardedServer:
    """A GuardedServer on the listening socket ``sock`` with waitress ``options``."""
    adj = Adjustments(**{k: v for k, v in options.items() if k not in ("host", "port")})
    logging.getLogger("waitress").addFilter(_CUTS_ARE_NOT_CRASHES)  # once: filters are a set
    return GuardedServer(app, sock, adj, deadlines, cap, door)


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
