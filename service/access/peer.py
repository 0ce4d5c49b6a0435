"""Which forwarded headers to believe: the peer address for the client's, a secret for who it is.

waitress can rewrite ``REMOTE_ADDR`` from ``X-Forwarded-For`` itself, but it does so before the
app runs and keeps no trace of the address the connection really came from, and the app needs
that address for more decisions: whether a client's ``X-Request-ID`` is kept
(``observe/requestlog.py``) and whether the authenticating proxy may be speaking. So the app
applies waitress's own proxy-header middleware (``waitress.proxy_headers``, the same code
``trusted_proxy`` turns on inside waitress) inside this one, and waitress is told to leave the
headers alone (``connections.waitress_options``). The behaviour is therefore the same under
``tablestream serve``, the test servers, and any other WSGI server.

The peer address alone is not enough to believe the user and group headers. One nginx often
serves two sites from 127.0.0.1: the sign-in site, which sets those headers from the sign-in's
answer, and a plain site for programs, which forwards whatever a client sends unless every one
of its locations clears them (issue 28: ``X-Forwarded-User: carol`` through the plain site read
carol's tables). So the identity headers are believed only from the trusted peer **and** with the
secret that only the sign-in site sends (``TABLESTREAM_AUTH_PROXY_SECRET_FILE``, header
``X-Tablestream-Proxy-Secret``), compared in constant time. Otherwise they are removed from the
environ before anything reads them, so a client that sends ``X-Forwarded-User: admin`` is simply
a client without credentials. The secret header itself is always removed, so no view, log line
or error page can show it; the secret is never logged.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from waitress.proxy_headers import proxy_headers_middleware

from ..config import ConfigError
from ..observe.requestlog import TRUSTED_PEER_KEY

__all__ = [
    "FROM_TRUSTED_PROXY_KEY",
    "PEER_KEY",
    "PROXY_SECRET_HEADER",
    "TRUSTED_PEER_KEY",
    "PeerMiddleware",
    "environ_key",
    "read_proxy_secret",
]

PEER_KEY = "tablestream.peer"
FROM_TRUSTED_PROXY_KEY = "tablestream.from_trusted_proxy"
"""True when the identity headers are the sign-in proxy's: trusted peer and the right secret."""
PROXY_SECRET_HEADER = "X-Tablestream-Proxy-Secret"

# Printable ASCII without spaces: what travels unchanged in an nginx header value.
_SECRET = re.compile(rb"[\x21-\x7e]{32,1024}")


def environ_key(header: str) -> str:
    """``X-Forwarded-User`` → ``HTTP_X_FORWARDED_USER``."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


_SECRET_KEY = environ_key(PROXY_SECRET_HEADER)


def read_proxy_secret(path: str) -> bytes:
    """The proxy secret kept in ``path`` (surrounding whitespace dropped), checked at start.

    Raises ConfigError, naming the file but never its content, when it cannot be read or is not
    32 to 1024 printable characters without spaces (``openssl rand -hex 32`` makes one).
    """
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"TABLESTREAM_AUTH_PROXY_SECRET_FILE={path!r} cannot be read: {exc.strerror}"
        ) from None
    if not _SECRET.fullmatch(secret):
        raise ConfigError(
            f"TABLESTREAM_AUTH_PROXY_SECRET_FILE={path!r} does not hold a usable secret; "
            "expected 32 to 1024 printable characters without spaces, e.g. the output of "
            "'openssl rand -hex 32'"
        )
    return secret


class PeerMiddleware:
    """Notes the peer, believes forwarded headers from the trusted proxy, identity only with
    ``proxy_secret``; ``unproven`` is called for identity headers from the trusted peer that
    lack it (a site that forgets to clear them, or a client on the proxy's host)."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        trusted_proxy: str,
        trusted_proxy_count: int,
        trusted_proxy_headers: Sequence[str],
        identity_headers: Sequence[str],
        proxy_secret: bytes | None = None,
        unproven: Callable[[], None] | None = None,
    ) -> None:
        self._proxy = trusted_proxy
        self._strip = [environ_key(h) for h in identity_headers]
        self._secret = proxy_secret
        self._unproven = unproven
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
        sent = environ.pop(_SECRET_KEY, None)  # always: nothing downstream may see it
        proven = (
            trusted
            and self._secret is not None
            and sent is not None
            and hmac.compare_digest(sent.encode("latin-1"), self._secret)
        )
        environ[PEER_KEY] = peer
        environ[TRUSTED_PEER_KEY] = trusted
        environ[FROM_TRUSTED_PROXY_KEY] = proven
        if not proven:
            claimed = False
            for key in self._strip:
                claimed = environ.pop(key, None) is not None or claimed
            if claimed and trusted and self._unproven is not None:
                self._unproven()
        return self._app(environ, start_response)
