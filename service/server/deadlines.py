"""When a connection that is not being served is closed: the rules, apart from the loop.

A connection costs the process a descriptor and a channel whether or not it ever sends a
request, so one that waits for nothing must go (issue 29). The rules, checked once a second
by the server's loop (service/server/tcpserver.py) on channels with no request in service:

- **A request header arrives at a minimum rate** (Apache's ``mod_reqtimeout``
  ``header=5-10,MinRate=500``): from its first byte a header has
  ``TABLESTREAM_HEADER_INITIAL_TIMEOUT`` seconds, plus one second per
  ``TABLESTREAM_HEADER_MIN_RATE`` bytes received, and never more than
  ``TABLESTREAM_HEADER_TIMEOUT`` from the connect. A connection that has sent nothing has the
  whole header timeout (a browser's preconnected socket waits for its request). A client that
  sends its header in one packet needs milliseconds; one that trickles a byte every few
  seconds (slowloris) is closed after the initial allowance instead of the whole deadline. The
  deadline counts from the connect for a first request, from its first byte for a kept-alive
  connection's next one (as Go's ``ReadHeaderTimeout``).
- **A kept-alive connection idle between requests** goes after ``TABLESTREAM_KEEPALIVE_TIMEOUT``.
- **At the connection limit, the oldest connection waiting for a request is dropped** so the
  new one is accepted (nginx reuses idle keep-alive connections the same way): the process
  never stops accepting because of half-open requests. Connections in service are never dropped.

Each close is counted in ``tablestream_connections_closed_total{reason}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AT_LIMIT",
    "CHANNEL_TIMEOUT",
    "CLOSE_REASONS",
    "HEADER_RATE",
    "HEADER_TIMEOUT",
    "KEEPALIVE_TIMEOUT",
    "Deadlines",
]

HEADER_TIMEOUT = "header_timeout"  # the header took longer than TABLESTREAM_HEADER_TIMEOUT
HEADER_RATE = "header_rate"  # the header came slower than TABLESTREAM_HEADER_MIN_RATE allows
KEEPALIVE_TIMEOUT = "keepalive_timeout"  # idle between requests
CHANNEL_TIMEOUT = "channel_timeout"  # waitress's own idle timeout (nothing sent or received)
AT_LIMIT = "at_limit"  # the oldest waiting connection, dropped for a new one at the limit
CLOSE_REASONS = (HEADER_TIMEOUT, HEADER_RATE, KEEPALIVE_TIMEOUT, CHANNEL_TIMEOUT, AT_LIMIT)


@dataclass(frozen=True)
class Deadlines:
    """The limits on connections that are not being served, and the counter of their closes."""

    header_timeout: float = 10.0
    header_initial_timeout: float = 5.0
    header_min_rate: int = 500  # bytes per second; 0: only the two timeouts apply
    keepalive_timeout: float = 15.0
    closed: Any = None  # the tablestream_connections_closed counter, or None

    def __post_init__(self) -> None:
        if self.closed is not None:
            for reason in CLOSE_REASONS:  # every series exists from the start, at 0
                self.closed.labels(reason)

    def header_allowance(self, received: int) -> float:
        """Seconds a request header may take, having received ``received`` bytes of it."""
        if not self.header_min_rate:
            return self.header_timeout
        allowed = self.header_initial_timeout + received / self.header_min_rate
        return min(self.header_timeout, allowed)

    def overdue(self, waited: float, header_bytes: int | None, trickling: float = 0.0) -> str:
        """Why a connection that has waited ``waited`` s should close ('' if it should not).

        ``header_bytes`` is how much of a request header it has sent, or None when it is idle
        between requests (a kept-alive connection after a response); ``trickling`` is the time
        since the first of those bytes. A connection that has sent nothing yet has the whole
        ``header_timeout`` (a browser's preconnected socket waits for its request); once bytes
        come they must keep coming at the minimum rate.
        """
        if header_bytes is None:
            return KEEPALIVE_TIMEOUT if waited > self.keepalive_timeout else ""
        if waited > self.header_timeout:
            return HEADER_TIMEOUT
        if header_bytes and trickling > self.header_allowance(header_bytes):
            return HEADER_RATE
        return ""

    def count(self, reason: str) -> None:
        if self.closed is not None:
            self.closed.labels(reason).inc()
