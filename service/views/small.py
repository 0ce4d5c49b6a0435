"""What answers at once whatever the streams do: the index, health, readiness, stream outcomes.

None of these takes a stream slot; ``/healthz`` is even answered by the server's loop thread
(``server/tcpserver.py``), so it never waits for a worker.
"""

from __future__ import annotations

import json

from flask import Response, current_app, render_template, request

from . import PACERS_KEY, bp
from .params import app_runtime, query_int

__all__: list[str] = []


@bp.get("/")
def index() -> str:
    runtime = app_runtime()
    access, environ = runtime.access, request.environ
    tables = []
    for described in runtime.describe_tables():
        name = described["name"]
        if access.may_read(environ, name):
            hidden = access.hidden(environ, name)
            described["columns"] = [c for c in described["columns"] if c not in hidden]
            tables.append(described)
    return render_template("index.html", tables=tables)


@bp.get("/streams/<request_id>")
def stream_status(request_id: str) -> Response:
    """The outcome of a recent stream, by the request id its page carries (a ``--processes``
    sibling's too: observe/board.py)."""
    runtime = app_runtime()
    owner = runtime.access.owner(request.environ)
    parsed = query_int("parsed", 10**15, default=None)
    if parsed is not None:
        # The page's parser has reached this row: its stream may go on (stream/pacing.py).
        current_app.extensions[PACERS_KEY].heard(request_id, owner, parsed)
    # Only the caller's own streams: another caller's id answers like one never seen.
    found = runtime.recent.get(request_id, owner)
    if found is None:
        body = {"request_id": request_id, "error": "no such recent stream"}
        return Response(json.dumps(body), 404, mimetype="application/json")
    body = {"request_id": request_id, **found}
    return Response(json.dumps(body), mimetype="application/json")  # never stored: security.py


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    runtime = app_runtime()
    if runtime.admission.draining:
        return Response("not ready\nshutting down\n", 503, mimetype="text/plain")
    problems = runtime.problems()
    if problems:
        # The reasons name tables: only for an open service or a caller with the metrics scope.
        why = problems if runtime.access.may_see_internals(request.environ) else []
        return Response("not ready\n" + "".join(p + "\n" for p in why), 503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")
