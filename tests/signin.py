"""A stand-in for oauth2-proxy, and the sign-in site file set up as docs/production.md says.

oauth2-proxy itself is not packaged in Debian; this stand-in on 127.0.0.1 answers nginx's
``auth_request`` the way oauth2-proxy does with ``--set-xauthrequest``: 202 with
``X-Auth-Request-Email`` / ``X-Auth-Request-Groups`` for a signed-in cookie, 401 otherwise, and
a sign-in page. ``proxy_secret`` writes the secret twice, as the docs do: the service's file
(``TABLESTREAM_AUTH_PROXY_SECRET_FILE``) and the nginx line the sign-in site includes.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .nginx import SSO_SITE, Site

__all__ = ["SIGNED_IN", "SIGN_IN_PAGE", "ProxySecret", "running_sign_in", "sso_site"]

SIGNED_IN = {
    "alice-cookie": ("alice@example.com", "staff,analysts"),
    "sre-cookie": ("sam@example.com", "sre"),
}
SIGN_IN_PAGE = b"<p>sign in with the company account</p>"
SECRET_INCLUDE = "include /etc/nginx/tablestream-proxy-secret.conf;"


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
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(SIGN_IN_PAGE)))
        self.end_headers()
        self.wfile.write(SIGN_IN_PAGE)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def running_sign_in() -> Iterator[int]:
    """The stand-in, serving from a thread until the block ends; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SignIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class ProxySecret:
    """A fresh secret in ``root``: ``service_file`` for the service, ``nginx_file`` for nginx."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.value = secrets.token_hex(32)
        self.service_file = root / "proxy-secret"
        self.service_file.write_text(self.value + "\n")
        self.service_file.chmod(0o600)
        self.nginx_file = root / "tablestream-proxy-secret.conf"
        self.nginx_file.write_text(f'proxy_set_header X-Tablestream-Proxy-Secret "{self.value}";\n')
        self.nginx_file.chmod(0o600)


def sso_site(sign_in_port: int, secret: ProxySecret) -> Site:
    """The shipped sign-in site, asking the stand-in and including the test's secret file."""

    def edit(text: str) -> str:
        sign_in = "proxy_pass http://127.0.0.1:4180;"
        assert text.count(sign_in) == 2 and text.count(SECRET_INCLUDE) == 1
        text = text.replace(sign_in, f"proxy_pass http://127.0.0.1:{sign_in_port};")
        return text.replace(SECRET_INCLUDE, f"include {secret.nginx_file};")

    return Site(SSO_SITE, edit)
