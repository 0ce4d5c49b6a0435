"""Timing fetches and steady loads against a server (``tablestream.testing.ServerProcess`` runs it).

The client is curl writing to /dev/null: a C client that costs the shared 2-core machine far
less than the server it measures, and reports time to first byte itself. Aggregate throughput
under a steady load comes from wrk instead: it counts every byte read during a fixed window,
partial responses included, where a batch of curl loops also times its ramp-up and the tail
in which the last few requests run alone. Peak RSS comes from
the kernel (VmHWM, reset through /proc/PID/clear_refs before each measurement), so a peak
between two samples is never missed.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Fetch", "Load", "fetch", "fetch_many", "steady_load", "wire_bytes"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Fetch:
    bytes: int
    ttfb: float
    seconds: float
    cut_off: bool = False  # curl gave up at its max time: bytes and seconds are what it got


MAX_SECONDS = 900
"""How long one fetch may take; a fetch given less is cut off there and says so."""


def _curl(
    url: str, gzip: bool = False, headers: tuple[str, ...] = (), max_time: float = MAX_SECONDS
) -> list[str]:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("the benchmark needs curl: apt-get install curl (make bench does it)")
    fmt = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"
    # With gzip, curl asks for it but does not inflate: the bytes counted are the bytes sent.
    accept = ["-H", "Accept-Encoding: gzip"] if gzip else []
    for header in headers:
        accept += ["-H", header]
    return [curl, "-sS", "--max-time", str(max_time), *accept, "-o", "/dev/null", "-w", fmt, url]


def _parse(url: str, out: str) -> Fetch:
    code, size, ttfb, total = out.split()
    if code != "200":
        raise RuntimeError(f"{url} answered {code}")
    return Fetch(int(size), float(ttfb), float(total))


def fetch(
    url: str, gzip: bool = False, headers: tuple[str, ...] = (), cut_off: float | None = None
) -> Fetch:
    """One timed fetch; with ``cut_off`` seconds, a fetch still running then is stopped there
    (curl's exit 28) and returned as what it got by then, marked ``cut_off``."""
    command = _curl(url, gzip, headers, cut_off or MAX_SECONDS)
    done = subprocess.run(command, capture_output=True, text=True)
    if cut_off is not None and done.returncode == 28 and done.stdout:
        got = _parse(url, done.stdout)
        got.cut_off = True
        return got
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return _parse(url, done.stdout)


def fetch_many(urls: list[str]) -> tuple[list[Fetch], float]:
    """Fetch all ``urls`` at once; the results and the wall time until the last one ended."""
    start = time.perf_counter()
    procs = [subprocess.Popen(_curl(u), stdout=subprocess.PIPE, text=True) for u in urls]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    return [_parse(u, o) for u, o in zip(urls, outs, strict=True)], wall


@dataclass
class Load:
    seconds: float
    bytes: int  # read off the wire, headers and chunk framing included
    requests: int
    errors: int
    client_cpu: float  # wrk's own CPU seconds, user + system


def wire_bytes(url: str) -> int:
    """Bytes one response to ``url`` takes on the wire (status line to last chunk)."""
    parts = urllib.parse.urlsplit(url)
    request = f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    total = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall((request + "Connection: close\r\n\r\n").encode("latin-1"))
        while block := sock.recv(1 << 20):
            total += len(block)
    return total


def steady_load(url: str, connections: int, seconds: int) -> Load:
    """wrk with ``connections`` closed-loop clients for ``seconds``, a new connection per request."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("the benchmark needs wrk: apt-get install wrk (make bench does it)")
    script = Path(__file__).with_name("wrk_summary.lua")
    threads = min(2, connections)
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "120s"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [*argv, "-s", str(script), url], capture_output=True, text=True, check=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    micros, nbytes, requests, *errors = (int(x) for x in line.split()[1:])
    return Load(micros / 1e6, nbytes, requests, sum(errors), client_cpu)
