"""The per-address connection cap: one client cannot take every connection slot (issue 29).

nginx's ``limit_conn`` and HAProxy's per-source ``conn_cur`` do this in front of a service;
``TABLESTREAM_CONNECTIONS_PER_CLIENT`` does it without them. The count is kept by the server
(service/server/tcpserver.py, told by its channels in channel.py: one more at a channel's
``add_channel``, one less at its ``del_channel``, both in the loop thread); this module holds the
rule and the reset. Behind a trusted proxy every connection comes from the proxy's address, so
that address is exempt: the proxy limits per client (ops/nginx/tablestream.conf,
docs/proxies.md).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["PER_CLIENT", "REJECT_REASONS", "ClientCap", "reset"]

PER_CLIENT = "per_client"
REJECT_REASONS = (PER_CLIENT,)  # the reason label's fixed set


@dataclass(frozen=True)
class ClientCap:
    """How many connections one client address may hold (0: no cap), and who is exempt."""

    per_client: int = 0
    exempt: str = ""  # the trusted proxy's address; "*" exempts every peer (all are proxies)
    rejected: Any = None  # the tablestream_connections_rejected counter, or None

    def __post_init__(self) -> None:
        if self.rejected is not None:
            for reason in REJECT_REASONS:  # every series exists from the start, at 0
                self.rejected.labels(reason)

    def refuses(self, host: str, per_address: dict[str, int]) -> bool:
        """Would one more connection from ``host`` be over the cap?"""
        if not self.per_client or self.exempt == "*" or host == self.exempt:
            return False
        return per_address.get(host, 0) >= self.per_client

    def count(self, reason: str) -> None:
        if self.rejected is not None:
            self.rejected.labels(reason).inc()


def reset(conn: socket.socket) -> None:
    """Close ``conn`` with a reset: nothing left behind in the kernel for it."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
