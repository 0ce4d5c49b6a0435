"""The shipped sign-in config (ops/nginx/tablestream-sso.conf) with Debian's nginx, for real.

oauth2-proxy itself is not packaged in Debian; a stand-in on 127.0.0.1 answers nginx's
``auth_request`` the way oauth2-proxy does with ``--set-xauthrequest``: 202 with
``X-Auth-Request-Email`` / ``X-Auth-Request-Groups`` for a signed-in cookie, 401 otherwise, and
a sign-in page. What is proven is everything on this side of it: nginx passes who the sign-in
says, overwrites what a client claims, and tablestream reads only what the policy grants.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tablestream.testing import httpraw

from .nginx import Nginx
from .servers import ROOT
from .tablehtml import parse_table

pytestmark = pytest.mark.system  # Debian's nginx

SSO_SITE = ROOT / "ops" / "nginx" / "tablestream-sso.conf"
SIGNED_IN = {"alice-cookie": ("alice@example.com", "staff,analysts")}


class _SignIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/oauth2/auth"):
            cookie = self.headers.get("Cookie", "")
            who = SIGNED_IN.get(cookie.removeprefix("_oauth2_proxy="))
            if who is None:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(202)
            self.send_header("X-Auth-Request-Email", who[0])
            self.send_header("X-Auth-Request-Groups", who[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<p>sign in with the company account</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sso(process_server, tmp_path: Path, demo_db: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[groups.analysts]\ntables = ["orders"]\nhide = ["orders.note"]\n')
    server = process_server(
        TABLESTREAM_TRUSTED_PROXY="127.0.0.1",
        TABLESTREAM_AUTH_POLICY_FILE=str(policy),
        TABLESTREAM_DB=str(demo_db),
    )
    signin = ThreadingHTTPServer(("127.0.0.1", 0), _SignIn)
    threading.Thread(target=signin.serve_forever, daemon=True).start()
    port = signin.server_address[1]
    proxy = Nginx(
        tmp_path / "nginx",
        server.port,
        site=SSO_SITE,
        edit=lambda text: text.replace("127.0.0.1:4180", f"127.0.0.1:{port}"),
    )
    yield server, proxy
    proxy.stop()
    signin.shutdown()
    signin.server_close()


def _get(url: str, **headers: str) -> httpraw.RawResponse:
    return httpraw.get(url, headers=headers, timeout=30)


def test_a_person_not_signed_in_gets_the_sign_in_page_and_no_table_bytes(sso):
    _, proxy = sso
    for path in ("/", "/tables/orders?limit=5", "/tables/orders.csv"):
        response = _get(proxy.url + path)
        assert b"sign in with the company account" in response.body, path
        assert b"customer_id" not in response.body
        # Naming oneself does not help: nginx asks the sign-in, which knows no such person.
        claimed = _get(proxy.url + path, **{"X-Forwarded-User": "admin"})
        assert b"sign in" in claimed.body and b"customer_id" not in claimed.body


def test_a_signed_in_person_reads_what_their_groups_grant_through_nginx(sso):
    _, proxy = sso
    cookie = {"Cookie": "_oauth2_proxy=alice-cookie"}
    page = _get(proxy.url + "/tables/orders?limit=5", **cookie)
    assert page.status == 200 and page.terminated
    table = parse_table(page.text)
    assert table.rows_sent == 5 and "note" not in table.columns and "customer_id" in table.columns
    assert _get(proxy.url + "/tables/customers?limit=5", **cookie).status == 404
    index = _get(proxy.url + "/", **cookie).text
    assert "/tables/orders" in index and "/tables/customers" not in index


def test_what_a_signed_in_client_claims_in_the_identity_headers_is_overwritten_by_nginx(sso):
    _, proxy = sso
    claims = {
        "Cookie": "_oauth2_proxy=alice-cookie",
        "X-Forwarded-User": "root@example.com",
        "X-Forwarded-Groups": "admins,analysts",
    }
    assert _get(proxy.url + "/tables/customers?limit=1", **claims).status == 404
    assert _get(proxy.url + "/tables/orders?limit=1", **claims).status == 200


def test_the_identity_headers_sent_straight_to_the_service_are_not_believed(sso):
    server, _ = sso
    # From 127.0.0.2: a client that reaches the service's port without nginx.
    with socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.2", 0)) as s:
        s.sendall(
            b"GET /tables/orders?limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"X-Forwarded-User: alice@example.com\r\nX-Forwarded-Groups: analysts\r\n\r\n"
        )
        status_line = s.makefile("rb").readline()
    assert status_line.split()[1] == b"401"
