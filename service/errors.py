"""Error pages: every refusal is a real page that says what was wrong, never a traceback.

Werkzeug's HTTP exceptions carry our message in ``description``; anything else that escapes a
view is logged with its traceback on the server and shown to the client as a plain 500.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

__all__ = ["register_error_pages"]


def _render(error: HTTPException) -> tuple[str, int]:
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        # Werkzeug's text says only "not allowed"; the Allow header is not what a person reads.
        allowed = ", ".join(sorted(error.valid_methods))
        error = MethodNotAllowed(
            error.valid_methods,
            f"{request.method} is not allowed on {request.path}; allowed: {allowed}.",
        )
    runtime = current_app.extensions.get("tablestream")
    known = []
    if runtime is not None and error.code == 404:
        # Only the tables this caller may read: a 404 must not list the others.
        known = sorted(n for n in runtime.catalog if runtime.access.may_read(request.environ, n))
    return (
        render_template("error.html", error=error, known_tables=known),
        error.code or 500,
    )


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        response = error.get_response()
        body, code = _render(error)
        response.set_data(body)
        response.status_code = code
        response.mimetype = "text/html"
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # type: ignore[no-untyped-def]
        current_app.logger.exception("unhandled error")
        return _render(InternalServerError("The server could not produce this page."))
