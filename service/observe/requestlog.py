"""One JSON line per request, with a request id that the client sees too.

Written when waitress closes the response, so a streamed table's line carries what actually
went out — rows, bytes, chunks, duration, outcome — and the same ``request_id`` that the
``X-Request-ID`` response header shows and that an error log line names. A sane incoming
``X-Request-ID`` is kept only from the trusted proxy (nginx sends its own ``$request_id``), so
one id follows the request end to end; from any other peer the id is a fresh random one. A
client that could choose its id could choose another's: the id names the stream's record
(``/streams/<id>``, the board of ``--processes``), which is also keyed by the caller
(``status.py``), but an open service has no callers to tell apart (issue 28).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..stream.body import StreamObserver
from .closing import ClosingBody

__all__ = [
    "CALLER_KEY",
    "FILTERS_KEY",
    "REQUEST_ID_KEY",
    "TRUSTED_PEER_KEY",
    "RequestLogMiddleware",
    "StreamFacts",
]

REQUEST_ID_KEY = "tablestream.request_id"
FILTERS_KEY = "tablestream.filters"  # set by views: the filter parameters a table request used
CALLER_KEY = "tablestream.caller"  # set by access/gate.py: who the request was
TRUSTED_PEER_KEY = "tablestream.trusted_peer"  # set by access/peer.py: from the trusted proxy
STREAM_KEY = "tablestream.stream"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("tablestream.access")


class StreamFacts:
    """What a stream sent, kept in the WSGI environ for the request's log line."""

    def __init__(self, table: str, environ: dict[str, Any]) -> None:
        self.table = table
        self.bytes = 0
        self.uncompressed_bytes = 0
        self.chunks = 0
        self.rows = 0
        self.outcome = ""
        environ[STREAM_KEY] = self

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        self.bytes += nbytes
        self.uncompressed_bytes += uncompressed
        self.chunks += 1

    def finished(self, outcome: str, rows_read: int) -> None:
        self.outcome = outcome
        self.rows = rows_read


def stream_facts(table: str, environ: dict[str, Any]) -> StreamObserver:
    return StreamFacts(table, environ)


class RequestLogMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]], filter_values: bool = True) -> None:
        self._app = app
        self._filter_values = filter_values

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "") if environ.get(TRUSTED_PEER_KEY) else ""
        request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        environ[REQUEST_ID_KEY] = request_id
        status: list[str] = []

        def with_id(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            headers.append(("X-Request-ID", request_id))
            return start_response(code, headers, exc_info)

        body = self._app(environ, with_id)
        return ClosingBody(body, lambda: self._log(environ, status, started))

    def _log(self, environ: dict[str, Any], status: list[str], started: float) -> None:
        query = environ.get("QUERY_STRING", "")
        filters = environ.get(FILTERS_KEY)
        if filters is not None and not self._filter_values:
            query = _without_filter_values(query)
        line: dict[str, Any] = {
            "request_id": environ[REQUEST_ID_KEY],
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": query,
            "status": int(status[-1]) if status else 500,
            "duration_s": round(time.perf_counter() - started, 6),
            "remote": environ.get("REMOTE_ADDR"),
        }
        caller = environ.get(CALLER_KEY)
        if caller is not None:  # the token's or user's name, never the token
            line["user"] = caller.name
            line["via"] = caller.via
        if filters:
            line["filters"] = filters
        facts: StreamFacts | None = environ.get(STREAM_KEY)
        if facts is not None:
            line.update(
                table=facts.table,
                rows=facts.rows,
                bytes=facts.bytes,
                uncompressed_bytes=facts.uncompressed_bytes,
                chunks=facts.chunks,
                outcome=facts.outcome,
            )
        log.info(json.dumps(line, ensure_ascii=False, separators=(",", ":")))


# Parameters whose values say nothing about the data (kept when filter values are not logged).
_OPTIONS = frozenset({"limit", "offset", "format", "_sort", "_sort_desc", "_col", "_cols"})


def _without_filter_values(query: str) -> str:
    """``query`` with every value but the options' replaced by REDACTED (names, order kept)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, v if k in _OPTIONS else "REDACTED") for k, v in pairs])
