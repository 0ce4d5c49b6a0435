"""Three instances of the service as three hosts on one machine, behind nginx, seen by Prometheus.

What a team that outgrew one machine runs, made real here so that a rolling deploy can be
watched from the clients' side (``make rolling``, loadtests/rolling.py) and its short form
tested (tests/test_cluster.py):

- three hosts (loadtests/netns.py: a network namespace each, with a veth link; three addresses
  of 127.0.0.x when namespaces cannot be made, and the cluster says so in ``fallback``);
- on each, ``tablestream serve`` from the *wheel*, installed in a venv of the instance's own (as
  a host's deploy would install it; the dev venv's editable install is never used), on
  ``ADDRESS:8080``, with its own copy of the demo SQLite file, the machine's PostgreSQL (a
  shared ``pg_orders`` table, through the host's relay) and one ``TABLESTREAM_SECRET_FILE``, so a
  resume point written by one instance is accepted by every other;
- Debian's nginx with the shipped site file and ops/nginx/tablestream-upstream-cluster.conf
  (its three ``server`` lines pointed at the hosts: least connections, ``max_fails``, and the
  site's ``proxy_next_upstream error timeout http_503``);
- one real Prometheus scraping the three every 0.5 s with ops/alerts.yml loaded, on each
  instance's ``TABLESTREAM_METRICS_PORT`` (9100), which stays open while the instance drains
  (the public port's listener closes at once): the rows of the grace are counted too;
- the machine's Redis (127.0.0.1:6379, through a relay as PostgreSQL) as every instance's
  ``TABLESTREAM_REDIS_URL``, under a prefix of the cluster's own, with a per-client stream cap
  (``TABLESTREAM_STREAMS_PER_CLIENT``, ``client_cap``): the cap, the failure budget and the
  ``/streams/<id>`` board hold across the three (docs/redis.md), as a deployment of several
  instances runs them.

An instance is replaced as a deploy replaces it: SIGTERM, wait for its exit, start the new one,
wait for ``/readyz``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tablestream.testing import ServerProcess
from tests.nginx import Nginx
from tests.pg import DSN, copy_demo_orders, scratch_schema
from tests.prometheus import poll, prometheus
from tests.servers import ROOT
from tests.wheel import build, install

from .netns import Host, Relay, hosts, namespaces_possible

__all__ = ["METRICS_PORT", "PORT", "UPSTREAM", "Cluster", "Instance", "cluster", "wait_readyz"]

PORT = 8080
METRICS_PORT = 9100  # scraped there: the main port's listener closes when a drain starts
UPSTREAM = ROOT / "ops" / "nginx" / "tablestream-upstream-cluster.conf"
PG_PORT = 5432
REDIS_PORT = 6379
_SERVER_LINE = re.compile(r"^(\s*)server 10\.0\.0\.1\d:8080 (.*)$", re.MULTILINE)


def wait_readyz(url: str, timeout: float = 60.0) -> float:
    """Poll ``url/readyz`` until it answers 200; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url}/readyz not 200 after {timeout} s")


def upstream_config(addresses: list[str]) -> str:
    """The shipped cluster upstream with its three servers pointed at ``addresses``."""
    text = UPSTREAM.read_text(encoding="utf-8")
    lines = iter(addresses)
    text, count = _SERVER_LINE.subn(lambda m: f"{m[1]}server {next(lines)}:{PORT} {m[2]}", text)
    if count != len(addresses):
        raise ValueError(f"{UPSTREAM}: {count} server lines, expected {len(addresses)}")
    return text


@dataclass
class Instance:
    """One instance: where it runs, what it runs, and the server process now serving there."""

    name: str
    host: Host
    venv: Path
    env: dict[str, str]
    folder: Path
    server: ServerProcess | None = None
    generation: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{PORT}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host.address}:{METRICS_PORT}/metrics"

    def start(self) -> float:
        """Start the next generation and wait for ``/readyz``; the seconds until it was ready."""
        started = time.monotonic()
        self.generation += 1
        self.server = ServerProcess(
            self.env,
            self.folder / f"{self.name}-{self.generation}.log",
            argv=self.host.argv(str(self.venv / "bin" / "tablestream"), "serve"),
            cwd=self.folder,
            port=PORT,
            host=self.host.address,
            stop_timeout=float(self.env["TABLESTREAM_SHUTDOWN_GRACE"]) + 30,
        )
        wait_readyz(self.url)
        return time.monotonic() - started

    def stop(self) -> float:
        """SIGTERM and wait for the exit (the drain); the seconds it took."""
        started = time.monotonic()
        if self.server is not None:
            self.server.stop()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: the host died, nothing drained."""
        if self.server is not None and self.server.proc.poll() is None:
            os.kill(self.server.pid, signal.SIGKILL)
            self.server.proc.wait()
            self.server.log.close()

    def replace(self) -> tuple[float, float]:
        """A deploy's step: stop (drain) this one, start the new one; (drain s, start s)."""
        return self.stop(), self.start()


@dataclass
class Cluster:
    instances: list[Instance]
    nginx: Nginx
    prometheus: str  # its API URL
    folder: Path
    fallback: str = ""  # why the hosts are loopback addresses and not namespaces ('' if not)
    started: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        """The cluster's front: nginx."""
        return self.nginx.url


def _venvs(folder: Path, count: int) -> list[Path]:
    wheel_dir = build(folder / "dist", "--wheel")
    (wheel,) = wheel_dir.glob("tablestream-*.whl")
    return [install(wheel, folder / f"venv-{i}", "[pg,redis]") for i in range(count)]


@contextlib.contextmanager
def cluster(
    folder: Path,
    count: int = 3,
    demo_rows: int = 100_000,
    grace: float = 5.0,
    venvs: int | None = None,
    use_namespaces: bool = True,
    env: dict[str, str] | None = None,
    client_cap: int = 0,
) -> Iterator[Cluster]:
    """``count`` instances, nginx and Prometheus, all stopped and removed at the end.

    ``venvs`` installs fewer venvs than instances (shared in turn) to save time in tests;
    ``client_cap`` is each client address's streams across the instances (0: no cap).
    """
    folder.mkdir(parents=True, exist_ok=True)
    why = namespaces_possible() if use_namespaces else "namespaces not asked for"
    venv_paths = _venvs(folder, venvs or count)
    tablestream = venv_paths[0] / "bin" / "tablestream"
    demo = folder / "demo.sqlite3"
    subprocess.run([tablestream, "demo-db", demo, "--rows", str(demo_rows)], check=True)
    secret = folder / "secret"
    secret.write_text(secrets.token_hex(32) + "\n")
    prefix = f"tablestream-cluster-{secrets.token_hex(4)}:"  # its keys apart from other users'
    with contextlib.ExitStack() as stack:
        admin, schema = stack.enter_context(scratch_schema("cluster"))
        copy_demo_orders(admin, schema, demo)
        admin.execute(f"ALTER TABLE {schema}.orders RENAME TO pg_orders")
        admin.execute(f"ANALYZE {schema}.pg_orders")
        machines = stack.enter_context(hosts(count, use_namespaces=not why))
        instances = []
        for i, host in enumerate(machines):
            if host.name:
                for port in (PG_PORT, REDIS_PORT):
                    relay = Relay((host.gateway, port), ("127.0.0.1", port))
                    stack.callback(relay.close)
            own = folder / f"demo-{i}.sqlite3"
            shutil.copyfile(demo, own)
            database = host.gateway if host.name else "127.0.0.1"  # the relay, or PostgreSQL
            dsn = DSN.replace("host=127.0.0.1", f"host={database}")
            instance_env = {
                "TABLESTREAM_DB": str(own),
                "TABLESTREAM_PG_DSN": dsn,
                "TABLESTREAM_PG_TABLES": f"{schema}.pg_orders",
                "TABLESTREAM_SECRET_FILE": str(secret),
                "TABLESTREAM_TRUSTED_PROXY": host.gateway,
                "TABLESTREAM_SHUTDOWN_GRACE": str(grace),
                "TABLESTREAM_METRICS_PORT": str(METRICS_PORT),
                "TABLESTREAM_METRICS_HOST": host.address,
                "TABLESTREAM_REDIS_URL": f"redis://{database}:{REDIS_PORT}/0",
                "TABLESTREAM_REDIS_PREFIX": prefix,
                # Not the default 0.1 s: the relay is a Python thread of the runner's process on
                # a loaded 2-core machine; with 0.1 s replies timed out (2-168 a run), give-backs
                # waited for the keeper's next tick and clients met their cap meanwhile.
                "TABLESTREAM_REDIS_TIMEOUT": "0.5",
                "TABLESTREAM_STREAMS_PER_CLIENT": str(client_cap),
                **(env or {}),
            }
            instance = Instance(
                "abc"[i] if count <= 3 else str(i),
                host,
                venv_paths[i % len(venv_paths)],
                instance_env,
                folder,
            )
            instances.append(instance)
            stack.callback(instance.stop)
        with ThreadPoolExecutor(len(instances)) as starting:  # hosts boot side by side
            list(starting.map(Instance.start, instances))
        nginx = Nginx(folder / "nginx", 0, upstream=upstream_config([h.address for h in machines]))
        stack.callback(nginx.stop)
        targets = [f"{h.address}:{METRICS_PORT}" for h in machines]
        job = {"job_name": "tablestream", "static_configs": [{"targets": targets}]}
        (folder / "prometheus").mkdir(exist_ok=True)
        # Every 0.5 s: what an instance sends between its last scrape and its exit is never
        # counted (the rest of a drain's grace is, on the metrics port).
        api = stack.enter_context(prometheus(folder / "prometheus", [job], interval="500ms"))
        # Nothing counts before Prometheus has scraped every instance once: a series starts at
        # its first sample, so the rows sent before it would be missing from increase().
        scraped = poll(api, 'up{job="tablestream"} == 1', lambda up: len(up) == count, 120)
        if len(scraped) != count:
            raise RuntimeError(f"Prometheus scraped {len(scraped)} of {count} instances")
        yield Cluster(instances, nginx, api, folder, why)
