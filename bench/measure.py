"""Measuring a server process from outside: RSS, peak RSS, CPU seconds; timing one fetch.

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
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Fetch",
    "Load",
    "Server",
    "fetch",
    "fetch_many",
    "free_port",
    "process_cpu_seconds",
    "steady_load",
    "wire_bytes",
]

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


@dataclass
class Server:
    """A server started as a process group; all figures sum over its processes."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        env = {**os.environ, **self.env, "TABLESTREAM_PORT": str(self.port)}
        env.setdefault("TABLESTREAM_HOST", "127.0.0.1")
        self._log = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s; see {self.log}")

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        kids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [self.proc.pid, *kids]

    def rss(self) -> int:
        return sum(_status(pid, "VmRSS") for pid in self.pids())

    def peak(self) -> int:
        return sum(_status(pid, "VmHWM") for pid in self.pids())

    def reset_peak(self) -> None:
        for pid in self.pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def settle(self, seconds: float = 1.5) -> None:
        """Wait for the service's idle work (heap trim after the last stream) to happen."""
        time.sleep(seconds)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@dataclass
class Fetch:
    bytes: int
    ttfb: float
    seconds: float


def _curl(url: str, gzip: bool = False) -> list[str]:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("the benchmark needs curl: apt-get install curl (make bench does it)")
    fmt = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"
    # With gzip, curl asks for it but does not inflate: the bytes counted are the bytes sent.
    accept = ["-H", "Accept-Encoding: gzip"] if gzip else []
    return [curl, "-sS", "--max-time", "900", *accept, "-o", "/dev/null", "-w", fmt, url]


def _parse(url: str, out: str) -> Fetch:
    code, size, ttfb, total = out.split()
    if code != "200":
        raise RuntimeError(f"{url} answered {code}")
    return Fetch(int(size), float(ttfb), float(total))


def fetch(url: str, gzip: bool = False) -> Fetch:
    done = subprocess.run(_curl(url, gzip), capture_output=True, text=True, check=True)
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
