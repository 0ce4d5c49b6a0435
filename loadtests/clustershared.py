"""What the cluster's instances share through Redis, checked from a client behind nginx.

Issue 31 item 6 (docs/redis.md): with ``TABLESTREAM_REDIS_URL`` on every instance, one client's
per-client stream cap holds across the instances, and a stream's ``/streams/<id>`` record is
answered by every instance, not only the one serving it. ``make rolling`` (and its short form)
checks both on the live cluster of loadtests/cluster.py, before the load and again after the
rounds of replacements, with the same client address (one of the page readers' of
loadtests/pageresume.py, whose streams the drains cut): a lease an instance failed to give back
would hold that client's cap and refuse its streams.

- ``cap`` long streams are opened through nginx from ``source`` and held (the head read, the
  body left unread); least connections sends them to different instances;
- one more from the same address must be refused with the documented 429 that says "across this
  service's instances" (nginx passes a 429 back at once: it is neither retried on the next
  instance nor counted against ``max_fails``, so a client past its cap marks no instance down);
- each held stream's ``/streams/<id>`` is asked of every instance, as nginx forwards it (from the
  trusted proxy's address, ``X-Forwarded-For: source``), and through nginx: all must answer it;
- the held streams are closed, and the client's leases must be gone from Redis within seconds.
"""

from __future__ import annotations

import html
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis

from tablestream.testing.metricsread import value

from .cluster import Cluster

__all__ = ["SharedCheck", "leases_held", "shared_check"]

STREAM = "/tables/synthetic.csv?limit=5000000"
ACROSS = "across this service's instances"


@dataclass
class SharedCheck:
    """What one check saw."""

    cap: int
    held: list[int] = field(default_factory=list)  # HTTP status of each of the cap streams
    spread: list[int] = field(default_factory=list)  # streams running per instance, while held
    extra: int = 0  # the status of stream cap+1
    extra_says_across: bool = False
    boards: list[int] = field(default_factory=list)  # /streams/<id>: each id x each instance
    through_nginx: list[int] = field(default_factory=list)  # /streams/<id> through nginx
    leases_after: int = -1  # the client's live leases in Redis once its streams were closed

    @property
    def ok(self) -> bool:
        return (
            self.held == [200] * self.cap
            and sum(1 for n in self.spread if n) >= min(2, self.cap)
            and self.extra == 429
            and self.extra_says_across
            and bool(self.boards)
            and set(self.boards + self.through_nginx) == {200}
            and self.leases_after == 0
        )

    def seen(self) -> str:
        return (
            f"{self.held.count(200)} of {self.cap} held on {self.spread}, cap+1 {self.extra}"
            f"{' across' if self.extra_says_across else ''}; /streams/<id> "
            f"{(self.boards + self.through_nginx).count(200)} of "
            f"{len(self.boards) + len(self.through_nginx)}; leases after {self.leases_after}"
        )


def _open(url: str, source: str) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """GET ``url`` from ``source``; the socket (unread past the head), status, headers, and
    what came with the head."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect((parts.hostname, parts.port or 80))
    sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(16384)
        if not got:
            break
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return sock, int(lines[0].split()[1]), headers, rest


def _get(url: str, source: str | None = None, forwarded: str = "") -> int:
    """The status of a short GET (``forwarded``: as nginx forwards a client's request)."""
    if source is not None:
        sock, status, _, _ = _open(url, source)
        sock.close()
        return status
    request = urllib.request.Request(url, headers={"X-Forwarded-For": forwarded})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def leases_held(c: Cluster, client: str = "*", live: bool = True) -> dict[str, int]:
    """Leases in Redis under the cluster's prefix, by client address (of ``client``, or of
    every client): live ones (a lease lives until its score, an expiry on Redis's clock), or
    with ``live=False`` expired ones still there, i.e. never given back (a client's next take
    removes them)."""
    prefix = c.instances[0].env["TABLESTREAM_REDIS_PREFIX"]
    store = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        seconds, micros = store.time()
        now = seconds * 1000 + micros // 1000
        span = (now, "+inf") if live else ("-inf", f"({now}")
        found = {
            key.decode()[len(prefix) + 4 :]: store.zcount(key, *span)
            for key in store.scan_iter(f"{prefix}cap:{client}")
        }
        return {address: n for address, n in found.items() if n}
    finally:
        store.close()


def shared_check(c: Cluster, cap: int, source: str) -> SharedCheck:
    """Run the check (no other load on the cluster: the spread is read from the instances'
    ``tablestream_streams_in_progress``)."""
    check = SharedCheck(cap)
    held: list[tuple[socket.socket, str]] = []
    try:
        for _ in range(cap):
            sock, status, headers, _ = _open(c.url + STREAM, source)
            held.append((sock, headers.get("x-request-id", "")))
            check.held.append(status)
            time.sleep(0.3)  # started and counted before the next picks its instance
        check.spread = [
            int(value(i.metrics_url, "tablestream_streams_in_progress") or 0) for i in c.instances
        ]
        sock, check.extra, _, rest = _open(c.url + STREAM, source)
        sock.settimeout(5)
        try:
            while len(rest) < 65536 and (got := sock.recv(65536)):
                rest += got
        except OSError:
            pass
        sock.close()
        check.extra_says_across = ACROSS in html.unescape(rest.decode("utf-8", "replace"))
        for _, request_id in held:
            for instance in c.instances:
                url = f"{instance.url}/streams/{request_id}"
                check.boards.append(_get(url, forwarded=source))
            check.through_nginx.append(_get(f"{c.url}/streams/{request_id}", source))
    finally:
        for sock, _ in held:
            sock.close()
    deadline = time.monotonic() + 15
    while (left := sum(leases_held(c, source).values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    check.leases_after = left
    return check
