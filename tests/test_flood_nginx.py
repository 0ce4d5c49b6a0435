"""Behind the shipped nginx site, a one-address slowloris flood never reaches the service.

Issue 29: nginx reads a request header before it opens anything upstream, so sockets that
trickle headers are held (and timed out) by nginx, never by the service; and the trusted
proxy's address is exempt from the service's per-address cap, so the cap must never be what
protects it. A real nginx with ops/nginx/tablestream.conf in front of a real ``tablestream
serve``; the flood comes from 127.0.1.1, the probes from 127.0.0.1 through nginx.
"""

from __future__ import annotations

import time

import pytest

from loadtests.attacks import AttackPool
from loadtests.probes import get
from tablestream.testing import ServerProcess, descriptor_census
from tablestream.testing.metricsread import value

from .nginx import Nginx

pytestmark = pytest.mark.system  # Debian's nginx

FLOOD = 150  # the harness's nginx has 256 worker connections
SECONDS = 6.0


def test_a_one_address_slowloris_flood_through_nginx_never_reaches_the_service(tmp_path, demo_db):
    server = ServerProcess(
        {"TABLESTREAM_DB": str(demo_db), "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1"},
        tmp_path / "server.log",
    )
    try:
        proxy = Nginx(tmp_path / "nginx", server.port)
        try:
            pool = AttackPool("127.0.0.1", proxy.port, 0, FLOOD, max_reopen=5)
            probes: list[int | None] = []
            sockets_peak = 0
            pool.start()
            try:
                ends = time.monotonic() + SECONDS
                while time.monotonic() < ends:
                    probes.append(get("127.0.0.1", proxy.port, "/healthz", 2.0)[0])
                    sockets_peak = max(sockets_peak, descriptor_census(server.pid)[1])
                    time.sleep(0.1)
                held = sum(1 for r in pool.slowloris_records() if r.closed_by_server is None)
            finally:
                pool.stop()
            assert held >= FLOOD * 0.9, f"the flood was not held open by nginx ({held})"
            assert probes and all(status == 200 for status in probes), probes
            # The service saw nothing of it: the listener, probes' upstream connections, no more.
            assert sockets_peak <= 20, f"{sockets_peak} sockets open in the service"
            rejected = value(
                f"{server.url}/metrics",
                "tablestream_connections_rejected_total",
                reason="per_client",
            )
            assert rejected == 0
        finally:
            proxy.stop()
    finally:
        server.stop()
