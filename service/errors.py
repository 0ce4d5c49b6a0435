"""Error pages: every refusal is a real page that says what was wrong, never a traceback.

Werkzeug's HTTP exceptions carry our message in ``description``; anything else that escapes a
view is logged with its traceback on the server and shown to the client as a plain 500.

A refusal a program reads is answered in what it asked for (``refuse_as``): a ``.csv`` request
gets the message as plain text, an ``.ndjson`` one and ``facets.json`` a JSON object
``{"error": message, ...}``, so a script that checks the status can print the reason without
parsing an HTML page (and one that does not check never takes a page for rows).
"""

from __future__ import annotations

import json
from typing import NoReturn

from flask import Flask, Response, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

__all__ = ["refuse_as", "register_error_pages"]


def refuse_as(fmt: str, code: int, message: str, **extra: str) -> NoReturn:
    """Refuse with ``code`` in the format ``fmt`` names: ``html`` the error page, ``csv`` the
    message as ``text/plain``, anything else (``ndjson``, ``json``) ``{"error": message,
    **extra}`` as ``application/json``. The response is final: no error handler rewrites it."""
    if fmt == "html":
        abort(code, message)
    if fmt == "csv":
        abort(Response(message + "\n", code, mimetype="text/plain"))
    body = json.dumps({"error": message, **extra}) + "\n"
    abort(Response(body, code, mimetype="application/json"))


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
