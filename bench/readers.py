"""Readers that behave like real slow clients: one socket each, a fixed rate, a fixed buffer.

A browser or a phone does not read as fast as the server writes; it takes what its link carries.
``read_at_rate`` copies that with ``recv_into`` a fixed buffer and a sleep whenever it is ahead
of its rate, so the server sees the back-pressure of a slow link (its socket buffer fills, its
writes wait) and not the one of a loaded client. Used by ``bench/capacity.py`` and its tests.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

__all__ = ["Reader", "read_all", "read_at_rate"]


@dataclass
class Reader:
    status: int  # 0: no status line arrived
    retry_after: bool  # the response had a Retry-After header
    first_byte: float  # seconds from sending the request to the status line
    bytes: int  # bytes received, headers included
    seconds: float  # how long it read (its window, or until the server ended the response)
    ended: bool  # the server closed the connection before the window was over

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


def _request(host: str, port: int, path: str, source: str | None, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source is not None:
            sock.bind((source, 0))
        sock.connect((host, port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
    except BaseException:
        sock.close()
        raise
    return sock


def read_at_rate(
    host: str,
    port: int,
    path: str,
    rate: float,
    seconds: float,
    *,
    source: str | None = None,
    buffer: int = 64 * 1024,
) -> Reader:
    """GET ``path`` and read it at ``rate`` bytes/s for ``seconds`` (or until it ends).

    A refusal (any status but 200) is read no further: its status, how fast it came and whether
    it said when to retry are what counts.
    """
    view = memoryview(bytearray(buffer))
    started = time.monotonic()
    deadline = started + seconds
    status, retry_after, first_byte, got, ended = 0, False, 0.0, 0, False
    head = b""
    with _request(host, port, path, source, timeout=max(10.0, seconds)) as sock:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            ahead = got / rate - (now - started)
            if ahead > 0:
                time.sleep(min(ahead, deadline - now))
                continue
            try:
                n = sock.recv_into(view, buffer)
            except (TimeoutError, ConnectionError):
                ended = True
                break
            if n == 0:
                ended = True
                break
            got += n
            if not status:
                head += bytes(view[:n])
                if b"\r\n\r\n" in head:
                    first_byte = time.monotonic() - started
                    status = int(head.split(None, 2)[1])
                    retry_after = b"\r\nretry-after:" in head.lower()
                    if status != 200:
                        break
    elapsed = min(time.monotonic(), deadline) - started
    return Reader(status, retry_after, first_byte, got, elapsed, ended)


def read_all(host: str, port: int, path: str) -> int:
    """GET ``path`` as fast as possible; the bytes received (a fast reader, for comparison)."""
    view = memoryview(bytearray(1 << 20))
    got = 0
    with _request(host, port, path, None, timeout=120) as sock:
        while n := sock.recv_into(view):
            got += n
    return got
