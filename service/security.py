"""Headers every response carries: the page runs only its own same-origin CSS and script.

Cells are escaped by ``stream.markup.rows_html`` (a batch of rows at a time, byte-identical to
escaping each cell); the Content-Security-Policy is the second wall should a
cell ever slip through (no inline script runs, nothing loads from elsewhere), ``nosniff`` stops
browsers from guessing a type, and no referrer leaks table URLs with their query strings.

A redirect's ``Location`` is relative (path and query only). Werkzeug builds the redirect that
merges doubled slashes (``/tables//orders`` → 308) as an absolute URL from the request's
``Host`` header, which the client chooses: ``Host: evil.example`` came back as
``http://evil.example/tables/orders`` — to a cache or a proxy that keys on the path, a redirect
off-site. A relative reference (RFC 9110 §10.2.2) is resolved by the client against the URL it
asked for, so it is right behind any proxy and names no host at all.

Nothing the service answers may be kept by a shared cache, because almost everything depends on
who asks: the index and a 404 page list the caller's tables, a table or ``/metrics`` is the
caller's to read, a 401 names what was wrong with its credentials. ``Vary: Authorization`` does
not help when the caller is named by a proxy's headers or a cookie (issue 28). So every response
gets ``Cache-Control: private, no-store`` here, unless its view says otherwise: the table
description (``.json``) is ``private, no-cache`` with an ETag (the caller's own browser may
revalidate it) and the page's CSS and script keep Flask's ``no-cache`` (the same for everyone).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response

__all__ = ["NOT_STORED", "SECURITY_HEADERS", "install_security_headers", "relative_location"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

NOT_STORED = "private, no-store"
"""Cache-Control of every response whose view sets none; the separate metrics port's too."""


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", NOT_STORED)
        location = response.headers.get("Location")
        if location is not None:
            response.headers["Location"] = relative_location(location)
        return response


def relative_location(location: str) -> str:
    """``location`` without scheme and host: the service only ever redirects to itself.

    Leading slashes are folded to one so the result can never read as ``//host/...``.
    """
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/")
    return urlunsplit(("", "", path, parts.query, parts.fragment))
