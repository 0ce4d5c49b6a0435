"""The shipped nginx config (ops/nginx) in front of a real `tablestream serve`, run by real nginx.

A complete stream arrives through nginx byte for byte as it does directly, on either upstream
protocol; the access log names the client, not nginx; a client that stops reading holds the
service's stream back instead of filling nginx's disk. (Cut streams: test_cut_points.py.)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tablestream.testing import ServerProcess
from tablestream.testing.metricsread import value

from .nginx import Nginx
from .servers import wait_for

pytestmark = pytest.mark.system  # Debian's nginx

CLIENT = "127.0.0.2"  # the test client's own loopback address; nginx reaches the service from .1


def curl_bytes(url: str, *headers: str) -> tuple[int, bytes, str]:
    """curl's exit status, the body as it came, and the response's X-Request-ID."""
    command = ["curl", "-sS", "--max-time", "30", "-D", "/dev/stderr", url]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run(command, capture_output=True, timeout=40)
    found = re.search(rb"(?im)^x-request-id: *(\S+)\r?$", done.stderr)
    return done.returncode, done.stdout, found.group(1).decode() if found else ""


@pytest.fixture
def behind_nginx(process_server, tmp_path: Path):
    """A server with TABLESTREAM_TRUSTED_PROXY=127.0.0.1 and both nginx variants before it."""
    proxies: list[Nginx] = []

    def start(**env: str) -> tuple[ServerProcess, Nginx, Nginx]:
        server = process_server(TABLESTREAM_TRUSTED_PROXY="127.0.0.1", **env)
        for http10 in (True, False):
            tier(server.port, http10=http10)
        return server, proxies[-2], proxies[-1]

    def tier(upstream_port: int, **options) -> Nginx:
        proxies.append(Nginx(tmp_path / f"nginx-{len(proxies)}", upstream_port, **options))
        return proxies[-1]

    start.tier = tier  # type: ignore[attr-defined]
    yield start
    for proxy in proxies:
        proxy.stop()


@pytest.mark.parametrize("fmt", ["html", "csv", "ndjson"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_complete_stream_through_nginx_is_byte_identical_to_direct(
    behind_nginx, demo_db, fmt, encoding
):
    server, http10, http11 = behind_nginx(TABLESTREAM_DB=str(demo_db))
    path = f"/tables/orders.{fmt}"
    accept = f"Accept-Encoding: {encoding}"
    for proxy in (http10, http11):
        through = curl_bytes(proxy.url + path, accept, "X-Request-ID: chosen-by-the-client")
        # nginx names the request itself ($request_id, 32 hex digits), whatever the client says.
        assert re.fullmatch(r"[0-9a-f]{32}", through[2]), through[2]
        # The page names its request id: asked directly under the id nginx gave (the test runs
        # on the trusted proxy's address), the service sends the very same bytes.
        direct = curl_bytes(server.url + path, accept, f"X-Request-ID: {through[2]}")
        assert direct[0] == 0 and direct[2] == through[2]
        if fmt == "html" and encoding == "identity":
            assert b'data-rows-sent="20000"' in direct[1]
        assert len(direct[1]) > 100_000
        assert through == direct


def _get_from(address: str, url: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """The status and X-Request-ID of a GET sent from ``address``."""
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-ID", "")
    finally:
        conn.close()


def _access_line(server: ServerProcess, request_id: str) -> dict | None:
    for line in server.log_path.read_text(errors="replace").splitlines():
        _, found, payload = line.partition(" tablestream.access ")
        if found and json.loads(payload)["request_id"] == request_id:
            return json.loads(payload)
    return None


@pytest.mark.parametrize(
    ("count", "logged"),
    [
        # One tier (nginx): the last X-Forwarded-For entry is the address nginx saw, the client.
        # What the client put in the header itself (203.0.113.7) is not believed.
        ("1", CLIENT),
        # Two tiers (a load balancer in front of nginx): the entry before nginx's own is the
        # balancer's word for the client.
        ("2", "203.0.113.7"),
    ],
)
def test_behind_the_shipped_nginx_the_access_log_names_the_client_not_nginx(
    behind_nginx, count, logged
):
    server, _, nginx = behind_nginx(TABLESTREAM_DB="", TABLESTREAM_TRUSTED_PROXY_COUNT=count)
    headers = {"X-Forwarded-For": "203.0.113.7"}
    status, request_id = _get_from(CLIENT, nginx.url, "/tables/synthetic.csv?limit=5", headers)
    assert status == 200
    line = wait_for(lambda: _access_line(server, request_id), 10, "the access log line")
    assert line["remote"] == logged
    assert line["remote"] != "127.0.0.1"  # nginx's address


@contextlib.contextmanager
def _stalled_client(proxy: Nginx) -> Iterator[str]:
    """A client that asks for the 10M-row table (~750 MB of CSV), takes the headers, then
    reads nothing more until the block ends; the stream's request id (nginx's)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /tables/synthetic.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200")
        found = re.search(rb"(?im)^x-request-id: *(\S+)\r?$", head)
        assert found is not None, head[:500]
        yield found.group(1).decode()


def _ended(server: ServerProcess, request_id: str) -> str:
    done = subprocess.run(
        ["curl", "-s", f"{server.url}/streams/{request_id}"], capture_output=True, timeout=10
    )
    found = json.loads(done.stdout).get("outcome", "in_progress")
    return "" if found == "in_progress" else found


def test_a_client_that_stops_reading_through_two_shipped_tiers_holds_the_stream_back(
    behind_nginx, tmp_path
):
    server, _, inner = behind_nginx(TABLESTREAM_DB="", TABLESTREAM_WRITE_TIMEOUT="1")
    outer = behind_nginx.tier(inner.port)  # a second nginx with the same site file in front
    with _stalled_client(outer) as request_id:
        # No tier reads ahead, so the service sees its client stall and cuts it after 1 s.
        ended = wait_for(lambda: _ended(server, request_id), 30, "the stalled stream's end")
        assert ended != "completed"
        assert outer.temp_bytes() == 0 and inner.temp_bytes() == 0
    sent = value(f"{server.url}/metrics", "tablestream_stream_bytes_total", table="synthetic")
    assert sent is not None and sent < 64 * 1024 * 1024


def test_an_outer_tier_without_its_own_buffering_off_spools_the_stream_to_disk(behind_nginx):
    """Why every tier must turn buffering off: nginx consumes X-Accel-Buffering: no, so the
    tier in front of it never sees the service's request not to buffer."""
    server, _, inner = behind_nginx(TABLESTREAM_DB="")

    def without_buffering_lines(site: str) -> str:
        for line in ("proxy_buffering off;", "proxy_max_temp_file_size 0;"):
            assert line in site
            site = site.replace(line, "")
        return site

    outer = behind_nginx.tier(inner.port, edit=without_buffering_lines)
    with _stalled_client(outer) as request_id:
        spooled = wait_for(
            lambda: outer.temp_bytes() > 32 * 1024 * 1024 and outer.temp_bytes(),
            30,
            "the outer tier's temp files",
        )
        assert inner.temp_bytes() == 0
        assert _ended(server, request_id) == ""  # the service is still rendering for it
    assert spooled > 32 * 1024 * 1024


def _status_from(stack: contextlib.ExitStack, address: str, url: str, path: str) -> int:
    """Start a GET from ``address`` and leave it open (closed with ``stack``); its status."""
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    stack.callback(conn.close)
    conn.request("GET", path)
    response = conn.getresponse()
    stack.callback(response.close)
    return response.status


CLUSTER_UPSTREAM = (
    Path(__file__).resolve().parent.parent / "ops/nginx/tablestream-upstream-cluster.conf"
)
CLUSTER_SERVER_LINE = re.compile(r"^(\s*)server 10\.0\.0\.1\d:8080 (.*)$", re.MULTILINE)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_client_past_its_stream_cap_marks_no_instance_down_in_the_cluster_upstream(
    process_server, tmp_path
):
    """The shipped cluster upstream (least_conn, max_fails=3 fail_timeout=5s) and site
    (proxy_next_upstream http_503) with two instances sharing one client cap through Redis.
    A client asking past its cap gets 429: were it 503, nginx would retry it on every instance
    and count each as failing, so four asks mark them all down and everyone gets 502 (make
    rolling saw 913 small requests refused so)."""
    prefix = f"tstest-{uuid.uuid4().hex[:12]}:"
    env = {
        "TABLESTREAM_DB": "",
        "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
        "TABLESTREAM_STREAMS_PER_CLIENT": "1",
        "TABLESTREAM_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TABLESTREAM_REDIS_PREFIX": prefix,
    }
    a, b = process_server(**env), process_server(**env)
    ports = iter([a.port, b.port, a.port])
    upstream, count = CLUSTER_SERVER_LINE.subn(
        lambda m: f"{m[1]}server 127.0.0.1:{next(ports)} {m[2]}", CLUSTER_UPSTREAM.read_text()
    )
    assert count == 3
    nginx = Nginx(tmp_path / "nginx", 0, upstream=upstream)
    path = "/tables/synthetic.csv"  # 2,000,000 rows: still running while the others ask
    try:
        with contextlib.ExitStack() as stack:
            assert _status_from(stack, "127.0.0.2", nginx.url, path) == 200
            past_cap = [_status_from(stack, "127.0.0.2", nginx.url, path) for _ in range(4)]
            assert past_cap == [429] * 4
            others = [
                _status_from(stack, f"127.0.0.{n}", nginx.url, "/tables/synthetic?limit=10")
                for n in range(3, 9)
            ]
            assert others == [200] * 6, "an instance was marked down for another client's cap"
        log = nginx.error_log.read_text()
        assert "no live upstreams" not in log and "upstream server temporarily disabled" not in log
        refused = sum(
            value(f"{s.url}/metrics", "tablestream_streams_rejected_total", reason="client_limit")
            for s in (a, b)
        )
        assert refused == 4  # each ask refused once, by one instance: none retried elsewhere
    finally:
        nginx.stop()
        client = redis.Redis.from_url(env["TABLESTREAM_REDIS_URL"])
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_behind_the_shipped_nginx_the_per_client_stream_limit_counts_each_client(behind_nginx):
    server, _, nginx = behind_nginx(TABLESTREAM_DB="", TABLESTREAM_STREAMS_PER_CLIENT="1")
    path = "/tables/synthetic.csv"  # 2,000,000 rows: still running while the others ask
    with contextlib.ExitStack() as stack:
        assert _status_from(stack, "127.0.0.2", nginx.url, path) == 200
        # Every connection from nginx comes from 127.0.0.1, yet another client is let in ...
        assert _status_from(stack, "127.0.0.3", nginx.url, path) == 200
        # ... and the same client is refused its second stream.
        assert _status_from(stack, "127.0.0.2", nginx.url, path) == 429
    rejected = value(f"{server.url}/metrics", "tablestream_streams_rejected_total")
    assert rejected == 1
    assert (
        value(f"{server.url}/metrics", "tablestream_streams_rejected_total", reason="client_limit")
        == 1
    )
