"""The shipped sign-in config (ops/nginx/tablestream-sso.conf) with Debian's nginx, for real.

The sign-in is a stand-in for oauth2-proxy (tests/signin.py). What is proven is everything on
this side of it: nginx passes who the sign-in says, with the proxy secret the service asks for,
overwrites what a client claims, and tablestream reads only what the policy grants. Both shipped
sites in one nginx, attacked through each: test_attacks_nginx.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tablestream.testing import httpraw

from .nginx import Nginx
from .signin import SIGN_IN_PAGE, ProxySecret, running_sign_in, sso_site
from .tablehtml import parse_table

pytestmark = pytest.mark.system  # Debian's nginx


@pytest.fixture
def sso(process_server, tmp_path: Path, demo_db: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[groups.analysts]\ntables = ["orders"]\nhide = ["orders.note"]\n')
    secret = ProxySecret(tmp_path / "secret")
    server = process_server(
        TABLESTREAM_TRUSTED_PROXY="127.0.0.1",
        TABLESTREAM_AUTH_POLICY_FILE=str(policy),
        TABLESTREAM_AUTH_PROXY_SECRET_FILE=str(secret.service_file),
        TABLESTREAM_DB=str(demo_db),
    )
    with running_sign_in() as port:
        proxy = Nginx(tmp_path / "nginx", server.port, sites=[sso_site(port, secret)])
        yield server, proxy
        proxy.stop()


def _get(url: str, **headers: str) -> httpraw.RawResponse:
    return httpraw.get(url, headers=headers, timeout=30)


def test_a_person_not_signed_in_gets_the_sign_in_page_and_no_table_bytes(sso):
    _, proxy = sso
    for path in ("/", "/tables/orders?limit=5", "/tables/orders.csv"):
        response = _get(proxy.url + path)
        assert SIGN_IN_PAGE in response.body, path
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
