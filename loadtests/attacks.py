"""Hostile and heavy clients for the reliability suite, each bounded in count and time.

Issue 12 took the service offline with a handful of sockets: stream requests whose clients never
read, slowloris connections that trickle a request header, an ``Expect: 100-continue`` that
waitress never answers. These are those clients, written once so that the suite
(``loadtests.reliability``) and the tests (``tests/test_availability.py``) attack alike.

Hundreds of attack sockets are owned by one selector thread (``AttackPool``), not a thread
each: on a 2-core machine 270 client threads would be the load, not the attack.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

__all__ = [
    "BURST_ADDRESS",
    "STALLED_PATH",
    "AttackPool",
    "Reply",
    "SocketRecord",
    "expect_continue",
    "stream_requests",
]

STALLED_PATH = "/tables/orders?limit=1000000"
# A request line and the start of a header that never ends: a slowloris client sends one byte
# of it at a time and never reaches the blank line that completes the request.
_TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slowloris: " + b"a" * 60_000
CONNECT_TIMEOUT = 2.0


def _request(path: str, host: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


@dataclass
class SocketRecord:
    """One attack connection: when it opened and who closed it (times are ``monotonic()``)."""

    kind: str  # "stalled" or "slowloris"
    opened: float
    first_sent: float | None = None  # when its first byte went out
    closed_by_server: float | None = None
    closed_by_us: float | None = None
    answer: bytes = b""  # what the server sent before closing (a slowloris may get a 408/400)


@dataclass
class _Slow:
    sock: socket.socket
    record: SocketRecord
    next_send: float
    source: str
    sent: int = 0
    open: bool = True


ATTACKER_ADDRESS = "127.0.1.1"


@dataclass
class AttackPool:
    """Stalled stream readers plus slowloris sockets, all driven by one selector thread.

    ``stalled`` connections each send ``stalled_path`` at once and never read a byte (the
    server's buffers fill and its writer blocks). ``slowloris`` connections each send one byte of
    an endless header every ``trickle_seconds``; when the server closes one, another takes its
    place until ``stop()``, so the pressure lasts the whole attack (at most ``max_reopen``
    openings per socket). A connect that fails (refused, or reset by a cap) is counted and
    tried again on the next pass, within the same bound.

    ``sources`` spreads the slowloris sockets over that many attacker addresses (127.0.1.1,
    127.0.1.2, …: a botnet rather than one host); a reopened socket keeps its address. The
    trickle is scheduled on a heap, so ten thousand sockets cost the pool per byte sent, not
    per socket per pass.
    """

    host: str
    port: int
    stalled: int
    slowloris: int
    stalled_path: str = STALLED_PATH
    trickle_seconds: float = 5.0
    max_reopen: int = 100
    # The attacker's own address (all of 127.0.0.0/8 is loopback), as a real one would have:
    # probes from 127.0.0.1 are then not behind the attacker's per-address connection cap.
    source: str = ATTACKER_ADDRESS
    sources: int = 1  # slowloris addresses: source, then the next ones in its /24
    records: list[SocketRecord] = field(default_factory=list)
    connect_failures: int = 0

    def __post_init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._slow: dict[int, _Slow] = {}
        self._due: list[tuple[float, int, _Slow]] = []  # (next send, tie-breaker, socket)
        self._seq = itertools.count()
        self._retry: list[str] = []  # addresses whose connect failed, to open again
        prefix, last = self.source.rsplit(".", 1)
        self._addresses = [f"{prefix}.{int(last) + i}" for i in range(max(1, self.sources))]
        self._stalled: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attack-pool", daemon=True)
        self._openings = 0

    def start(self) -> None:
        for _ in range(self.stalled):
            sock = self._connect()
            if sock is None:
                continue
            sock.sendall(_request(self.stalled_path, self.host))
            self._stalled.append(sock)
            self.records.append(SocketRecord("stalled", time.monotonic()))
        now = time.monotonic()
        for i in range(self.slowloris):
            # Spread the trickled bytes over the period so the loop sends a few at a time.
            source = self._addresses[i % len(self._addresses)]
            self._open_slow(now + self.trickle_seconds * i / max(1, self.slowloris), source)
        self._thread.start()

    def stop(self) -> None:
        """Close every attack socket (the client hangs up) and end the selector thread."""
        self._stop.set()
        self._thread.join(timeout=10)
        now = time.monotonic()
        for slow in list(self._slow.values()):
            self._close(slow, by_server=False, when=now)
        for sock in self._stalled:
            sock.close()
        for record in self.records:
            if record.kind == "stalled":
                record.closed_by_us = now
        self._stalled.clear()
        self._selector.close()

    def slowloris_records(self) -> list[SocketRecord]:
        return [r for r in self.records if r.kind == "slowloris"]

    def _connect(self, source: str = "") -> socket.socket | None:
        try:
            return socket.create_connection(
                (self.host, self.port),
                timeout=CONNECT_TIMEOUT,
                source_address=(source or self.source, 0),
            )
        except OSError:
            self.connect_failures += 1
            return None

    def _open_slow(self, first_send: float, source: str) -> None:
        if self._openings >= self.slowloris * self.max_reopen:
            return
        self._openings += 1
        sock = self._connect(source)
        if sock is None:  # refused or reset at once (a cap): try again, as an attacker would
            self._retry.append(source)
            return
        sock.setblocking(False)
        slow = _Slow(sock, SocketRecord("slowloris", time.monotonic()), first_send, source)
        self.records.append(slow.record)
        self._slow[sock.fileno()] = slow
        self._selector.register(sock, selectors.EVENT_READ, slow)
        heapq.heappush(self._due, (first_send, next(self._seq), slow))

    def _close(self, slow: _Slow, by_server: bool, when: float) -> None:
        slow.open = False
        self._slow.pop(slow.sock.fileno(), None)
        self._selector.unregister(slow.sock)
        slow.sock.close()
        if by_server:
            slow.record.closed_by_server = when
        else:
            slow.record.closed_by_us = when

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                self._readable(key.data)
            now = time.monotonic()
            retry, self._retry = self._retry, []
            for source in retry:
                if not self._stop.is_set():
                    self._open_slow(now, source)
            while self._due and self._due[0][0] <= now:
                _, _, slow = heapq.heappop(self._due)
                if slow.open:
                    self._trickle(slow, now)

    def _readable(self, slow: _Slow) -> None:
        try:
            data = slow.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            slow.record.answer += data[: 256 - len(slow.record.answer)]
            return
        self._close(slow, by_server=True, when=time.monotonic())
        if not self._stop.is_set():
            self._open_slow(time.monotonic(), slow.source)

    def _trickle(self, slow: _Slow, now: float) -> None:
        try:
            slow.sock.send(_TRICKLE[slow.sent % len(_TRICKLE) : slow.sent % len(_TRICKLE) + 1])
        except BlockingIOError:
            pass
        except OSError:
            self._close(slow, by_server=True, when=now)
            if not self._stop.is_set():
                self._open_slow(now, slow.source)
            return
        if slow.sent == 0:
            slow.record.first_sent = now
        slow.sent += 1
        slow.next_send = now + self.trickle_seconds
        heapq.heappush(self._due, (slow.next_send, next(self._seq), slow))


@dataclass
class Reply:
    """The status line and headers a request got, and how long after sending they came."""

    status: int | None  # None: nothing within the wait (the request sat in a queue)
    headers: dict[str, str]
    seconds: float | None
    sock: socket.socket | None = None


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


BURST_ADDRESS = "127.0.3.1"
BURST_PER_ADDRESS = 32


def stream_requests(
    host: str,
    port: int,
    path: str,
    count: int,
    wait: float,
    source: str = "",
    per_address: int = BURST_PER_ADDRESS,
) -> list[Reply]:
    """Send ``count`` stream requests at once; read each one's status and headers, no body.

    A request that gets no status within ``wait`` seconds was queued. The sockets stay open
    (their clients never read the body, so a stream that got a slot keeps it): close them with
    ``reply.sock.close()``. With ``source`` (an IPv4 address), the requests come from it and the
    next addresses of its /24, ``per_address`` each: a burst of many clients, each under the
    server's per-address connection cap (one address sending hundreds is reset at accept).
    """
    selector = selectors.DefaultSelector()
    pending: dict[int, tuple[socket.socket, float, bytearray]] = {}
    replies: dict[int, Reply] = {}

    def read(timeout: float) -> None:
        for key, _ in selector.select(timeout=timeout):
            i = key.data
            sock, sent, buffer = pending[i]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buffer += data
            head, found, _ = bytes(buffer).partition(b"\r\n\r\n")
            if found or not data:
                status, headers = _parse_head(head) if found else (None, {})
                replies[i] = Reply(status, headers, time.monotonic() - sent, sock)
                selector.unregister(sock)
                del pending[i]

    prefix, _, last = source.rpartition(".")
    try:
        for i in range(count):
            bind = (f"{prefix}.{int(last) + i // per_address}", 0) if source else None
            sock = socket.create_connection(
                (host, port), timeout=CONNECT_TIMEOUT, source_address=bind
            )
            sock.sendall(_request(path, host))
            sock.setblocking(False)
            pending[i] = (sock, time.monotonic(), bytearray())
            selector.register(sock, selectors.EVENT_READ, i)
            # Answers are read as they come while the rest are sent: a reply's time is from
            # its request to its status, not to the end of the sending.
            read(0.0)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            read(max(0.0, deadline - time.monotonic()))
    finally:
        selector.close()
    for i, (sock, _, _) in pending.items():
        replies[i] = Reply(None, {}, None, sock)
    return [replies[i] for i in range(count)]


@dataclass
class ExpectResult:
    status: int | None  # the final status; None when none came within the timeout
    interim: list[int]  # 1xx statuses seen first (waitress sends 100 Continue)
    seconds: float


def expect_continue(
    host: str, port: int, path: str = "/healthz", timeout: float = 3.0
) -> ExpectResult:
    """GET ``path`` with ``Expect: 100-continue`` and no body, on a raw socket; bounded wait."""
    started = time.monotonic()
    interim: list[int] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_request(path, host, "Expect: 100-continue\r\nConnection: close\r\n"))
        buffer = b""
        try:
            while time.monotonic() - started < timeout:
                head, found, rest = buffer.partition(b"\r\n\r\n")
                if not found:
                    data = sock.recv(4096)
                    if not data:
                        break
                    buffer += data
                    continue
                status, _ = _parse_head(head)
                if status >= 200:
                    return ExpectResult(status, interim, time.monotonic() - started)
                interim.append(status)
                buffer = rest
        except OSError:
            pass
    return ExpectResult(None, interim, time.monotonic() - started)
