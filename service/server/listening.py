"""Where the server's listening sockets come from, and what a user reads when one cannot be had.

A port already taken is the commonest start-up failure (a second `make run`, an old server still
draining); it deserves one line naming the address and the setting to change, not a traceback
from deep inside waitress. Sockets are made here for the two ways several processes share a
port: one socket handed down to every child (``--processes``, systemd-style), or one
SO_REUSEPORT socket per independently started process.
"""

from __future__ import annotations

import logging
import resource
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import ConfigError, Settings

__all__ = [
    "bind_errors_exit",
    "check_open_file_limit",
    "inherited_listening_socket",
    "listening_socket",
]

log = logging.getLogger("tablestream")

FD_HEADROOM = 64  # descriptors besides connections: database files, pipes, the listener, logs


def check_open_file_limit(settings: Settings) -> int:
    """Raise the soft open-file limit to what the connection limit needs; the connections held.

    Each connection is a descriptor, and a slow reader's spilled output buffer up to two more
    (temp files), so a container's usual soft limit of 1,024 would turn a connection flood into
    accept() errors. The soft limit is raised up to the hard limit. Returns how many connections
    the process can hold: the connection limit, or fewer when the hard limit is short (logged
    with the settings to change) — the server then holds that many, so accept() never fails
    for want of a descriptor (which would also keep the listener readable, spinning the loop).
    """
    reserve = 2 * settings.threads + FD_HEADROOM
    needed = settings.connection_limit + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return settings.connection_limit
    held = max(1, soft - reserve)
    log.warning(
        "open-file limit is %d, below the %d that TABLESTREAM_CONNECTION_LIMIT=%d needs: this "
        "process holds %d connections; raise the hard limit (ulimit -n, LimitNOFILE=) or lower "
        "the connection limit",
        soft,
        needed,
        settings.connection_limit,
        held,
    )
    return held


def listening_socket(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; with ``reuse_port`` other processes may bind the port too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def inherited_listening_socket(fd: int) -> socket.socket:
    """The listening TCP socket handed down as file descriptor ``fd``; ConfigError if it is not."""
    problem = f"TABLESTREAM_LISTEN_FD={fd} is not a listening TCP socket"
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(
            f"{problem} ({exc.strerror}); expected an inherited, bound, listening socket or 0"
        ) from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()  # not ours to close
        raise ConfigError(f"{problem}; expected an inherited, bound, listening socket or 0")
    return sock


@contextmanager
def bind_errors_exit(host: str, port: int, settings: str) -> Iterator[None]:
    """Turn a failure to bind ``host:port`` into one line on stderr and exit status 1."""
    try:
        yield
    except (OSError, ValueError) as exc:  # waitress raises ValueError for a host it cannot resolve
        reason = getattr(exc, "strerror", None) or str(exc).rstrip(".")
        print(
            f"tablestream: cannot listen on {host}:{port}: {reason}; expected a free "
            f"port on an address of this machine (another server running? change {settings})",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
