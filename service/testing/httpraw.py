"""A tiny HTTP/1.1 client that keeps what ordinary clients hide: each chunk and when it came.

urllib and requests undo chunked encoding; the chunk tests need the chunk boundaries, their
arrival times, and whether the terminating zero-length chunk ever arrived (a cut stream never
has it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["RawResponse", "get"]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # seconds after the request was sent
    terminated: bool = False  # the zero-length chunk arrived: the server ended the body on purpose
    size: int = 0  # body bytes received, also when the chunks were not kept
    tail: bytes = b""  # the last bytes of the body, kept even when the chunks are not
    started: float = 0.0  # time.monotonic() when the request was sent: arrivals count from it

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def _read_line(sock_file) -> bytes:
    line = sock_file.readline(65537)
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection ended inside a line: {line[:80]!r}")
    return line[:-2]


def get(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
    keep: bool = True,
    read_pause: float = 0.0,
    hold: threading.Event | None = None,
    rate: float | None = None,
    rcvbuf: int | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
    source: str | None = None,
) -> RawResponse:
    """GET ``url``; read the chunked body (or up to ``max_bytes`` of it, then hang up).

    With ``keep=False`` only sizes, arrival times and the body's last 4 KiB are kept, so a
    test can drain a huge stream without holding it. ``read_pause`` seconds of sleep after each
    chunk make a slow reader; ``hold`` one that stops reading after the first chunk until it
    is set (what the server and the kernel's buffers then hold does not depend on read speed).
    ``rate`` (bytes a second) paces the reading; ``rcvbuf`` fixes the socket's receive buffer, as
    a slow link bounds what is in flight: without it Linux grows a slow reader's buffer up to
    ``tcp_rmem``'s maximum (32 MiB here), megabytes the client's own kernel holds for it.
    ``on_chunk`` is given each chunk as it arrives (a reader that parses as it goes, with
    ``keep=False``); ``source`` is the address to connect from (127.0.0.x: another client).
    """
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if rcvbuf is not None:  # before connect: the window scale is agreed in the handshake
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.connect((parts.hostname, parts.port or 80))
        started = time.monotonic()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        f = sock.makefile("rb")
        status = int(_read_line(f).split()[1])
        response_headers: dict[str, str] = {}
        while line := _read_line(f):
            name, _, value = line.decode("latin-1").partition(":")
            response_headers[name.strip().lower()] = value.strip()
        response = RawResponse(status, response_headers)
        response.started = started
        if response_headers.get("transfer-encoding", "").lower() != "chunked":
            length = int(response_headers.get("content-length", "0"))
            response.chunks.append(f.read(length))
            response.arrivals.append(time.monotonic() - started)
            response.size = len(response.chunks[0])
            response.tail = response.chunks[0][-4096:]
            response.terminated = True
            return response
        received = 0
        try:
            while True:
                size = int(_read_line(f).split(b";")[0], 16)
                if size == 0:
                    _read_line(f)
                    response.terminated = True
                    break
                data = f.read(size)
                if len(data) != size:
                    break
                _read_line(f)
                if keep:
                    response.chunks.append(data)
                if on_chunk is not None:
                    on_chunk(data)
                response.tail = (response.tail + data)[-4096:]
                response.arrivals.append(time.monotonic() - started)
                received += size
                response.size = received
                if max_bytes is not None and received >= max_bytes:
                    break
                if hold is not None:
                    hold.wait(timeout)
                    hold = None
                if read_pause:
                    time.sleep(read_pause)
                if rate:
                    ahead = received / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except (ConnectionError, ValueError, OSError):
            pass
        return response
