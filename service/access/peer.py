"""Which forwarded headers to believe: decided once, at the edge of the app, by the peer address.

waitress can rewrite ``REMOTE_ADDR`` from ``X-Forwarded-For`` itself, but it does so before the
app runs and keeps no trace of the address the connection really came from, and the app needs
that address for one more decision: whether the authenticating proxy's user and group headers
may be believed. So the app applies waitress's own proxy-header middleware
(``waitress.proxy_headers``, the same code ``trusted_proxy`` turns on inside waitress) inside
this one, and waitress is told to leave the headers alone (``connections.waitress_options``).
The behaviour is therefore the same under ``tablestream serve``, the test servers, and any
other WSGI server.

From a peer that is not the trusted proxy, the user and group headers are removed from the
environ before anything reads them, so a client that sends ``X-Forwarded-User: admin`` is
simply a client without credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from waitress.proxy_headers import proxy_headers_middleware

__all__ = ["FROM_TRUSTED_PROXY_KEY", "PEER_KEY", "PeerMiddleware", "environ_key"]

PEER_KEY = "tablestream.peer"
FROM_TRUSTED_PROXY_KEY = "tablestream.from_trusted_proxy"


def environ_key(header: str) -> str:
    """``X-Forwarded-User`` → ``HTTP_X_FORWARDED_USER``."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


class PeerMiddleware:
    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        trusted_proxy: str,
        trusted_proxy_count: int,
        trusted_proxy_headers: Sequence[str],
        identity_headers: Sequence[str],
    ) -> None:
        self._proxy = trusted_proxy
        self._strip = [environ_key(h) for h in identity_headers]
        self._app = proxy_headers_middleware(
            app,
            trusted_proxy=trusted_proxy or None,
            trusted_proxy_count=trusted_proxy_count,
            trusted_proxy_headers=set(trusted_proxy_headers) if trusted_proxy else None,
            clear_untrusted=True,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        peer = environ.get("REMOTE_ADDR", "")
        trusted = bool(self._proxy) and (self._proxy == "*" or peer == self._proxy)
        environ[PEER_KEY] = peer
        environ[FROM_TRUSTED_PROXY_KEY] = trusted
        if not trusted:
            for key in self._strip:
                environ.pop(key, None)
        return self._app(environ, start_response)
