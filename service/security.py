"""Headers every response carries: the page runs only its own same-origin CSS and script.

Cells are escaped by the template; the Content-Security-Policy is the second wall should a
cell ever slip through (no inline script runs, nothing loads from elsewhere), ``nosniff`` stops
browsers from guessing a type, and no referrer leaks table URLs with their query strings.
"""

from __future__ import annotations

from flask import Flask, Response

__all__ = ["SECURITY_HEADERS", "install_security_headers"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
