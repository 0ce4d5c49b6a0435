"""``/tables/<name>``: the stream (page, CSV, NDJSON), rows by range, the table described.

The route checks everything it can before the first byte (``params.py``), takes a stream slot or
answers 503 at once (``_admit``), opens the query, and hands the rows to the stream
(``stream/body.py``), which owns them and the slot from then on. Until then the slot belongs to
the ``with`` block of ``table()``, so every other way out of it gives the slot back. The
response made from the open rows (a fragment, HEAD, the stream's body) is ``response.py``; the
table described (``/tables/<name>.json``) is ``description.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from flask import Response, abort, current_app, request
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from ..config.settings import CSV_NULLS, NDJSON_DECIMALS, Settings
from ..errors import refuse_as
from ..query import QueryError, open_query
from ..runtime import Runtime
from ..server.admission import CLIENT_LIMIT, NO_SLOT, NOT_EXPECTED, NoSlot, Rejected, Ticket
from ..server.channel import EXPECTED_KEY
from ..server.door import TakesASlot
from ..sources import BadValue, QueryTimeout, RowStream, SourceBusy, SourceError, Table
from ..sources.deadline import TIMEOUT_ADVICE
from ..sources.search import BadSearch
from ..stream.csvnulls import null_marker
from ..stream.fragments import cheap_offset, parse_fragment
from . import bp
from .description import description
from .params import (
    app_runtime,
    bad_search,
    query_choice,
    query_int,
    table_and_format,
    table_query,
)
from .response import respond

__all__ = ["refusal_text", "takes_a_slot"]


def _admit(runtime: Runtime, limit: int | None) -> Ticket | NoSlot:
    """A stream slot, or a 503 (429 for a client over its cap) with Retry-After at once; a
    small page needs none (fast lane).

    A page of at most ``small_rows`` rows is a few hundred KiB at most: it fits in waitress's
    output buffer, so its thread is free again at once even when the client never reads.
    """
    settings = runtime.settings
    expected = request.environ.get(EXPECTED_KEY, NOT_EXPECTED)  # the loop thread's count
    if limit is not None and limit <= settings.small_rows:
        expected.settle()
        return NO_SLOT
    try:
        return runtime.admission.admit(request.remote_addr or "", expected)
    except Rejected as exc:
        runtime.metrics.streams_rejected.labels(exc.reason).inc()
        # A client over its own cap is 429, not 503: a balancer retries a 503 on the next
        # instance and counts it as that instance failing (nginx's proxy_next_upstream http_503
        # and max_fails), so one client asking past its cap marked every instance down for
        # everyone (make rolling: 913 small requests got 502). A 429 goes back to that client.
        refused = TooManyRequests if exc.reason == CLIENT_LIMIT else ServiceUnavailable
        raise refused(refusal_text(exc, settings), retry_after=settings.retry_after) from None


def refusal_text(rejected: Rejected, settings: Settings) -> str:
    """What a refused stream request is told: why, when to come back, and the fast lane."""
    return (
        f"{rejected.message} Try again in {settings.retry_after} s, or ask for at most "
        f"{settings.small_rows} rows (?limit=), which needs no slot."
    )


def takes_a_slot(small_rows: int) -> TakesASlot:
    """The door's copy of this module's rule (service/server/door.py), for the requests it
    certainly covers: GET or HEAD of ``/tables/<name>`` (not a description, ``.json``) with
    no ``limit`` or a valid one above ``small_rows``. Anything else goes on to the view."""

    def check(method: str, path: str, query: str) -> bool:
        if method not in ("GET", "HEAD") or not path.startswith("/tables/"):
            return False
        name = path[len("/tables/") :]
        if not name or "/" in name or name.endswith(".json"):
            return False
        limits = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "limit"]
        if not limits:
            return True
        return len(limits) == 1 and limits[0].isdigit() and int(limits[0]) > small_rows

    return check


@bp.get("/tables/<name>")
def table(name: str) -> Response:
    runtime = app_runtime()
    settings = runtime.settings
    if name.endswith(".json") and name not in runtime.catalog:
        return description(runtime, name)
    source, fmt = table_and_format(name)
    limit = query_int("limit", settings.max_rows, default=None)
    offset = query_int("offset", settings.max_offset, default=0)
    q, key = table_query(runtime, source, ignore=("_facet",))  # the page's facets: facets.py
    # How NULL is written in CSV and decimals in NDJSON; either may be given with any format.
    options = {
        "null": query_choice("null", CSV_NULLS, settings.csv_null),
        "decimals": query_choice("decimals", NDJSON_DECIMALS, settings.ndjson_decimals),
    }
    typed = fmt.name == "ndjson" or (fmt.name == "csv" and options["null"] != "empty")
    # A CSV's spelling of NULL, known before the query is sent: a database may write the CSV
    # (PostgreSQL's COPY, which HEAD would only start to throw away).
    csv = None
    if fmt.name == "csv" and request.method != "HEAD":
        csv = (null_marker(options["null"]), options["null"] == "empty")
    try:
        fragment = parse_fragment(request.args.to_dict(flat=False), limit, fmt.name)
    except ValueError as exc:
        abort(400, f"{exc}")
    cheap = fragment is None or cheap_offset(source, offset or 0, settings.small_rows)
    # The ticket's one owner: leaving this block gives the slot back on every path (an error
    # page, HEAD, a fragment, an exception), except a stream's, whose body took the ticket over
    # (``_body`` in response.py) and gives it back when waitress closes it.
    with _admit(runtime, limit if cheap else None) as ticket:
        rows = _open(runtime, source, fmt.name, q, key, limit, offset or 0, typed, csv)
        return respond(runtime, source, fmt, rows, ticket, q, key, limit, offset, options, fragment)


def _open(
    runtime: Runtime,
    source: Table,
    fmt: str,
    q: Any,
    key: Any,
    limit: int | None,
    offset: int,
    typed: bool,
    csv: tuple[str, bool] | None = None,
) -> RowStream:
    """The query's rows, or the 400 / 503 page that says why they cannot be read; a query
    over the time limit is refused in the format asked for (``fmt``, ``errors.refuse_as``)."""
    name = source.name
    sort_rows = runtime.settings.sort_rows
    try:
        return open_query(source, q, key, limit, offset, sort_rows, typed=typed, csv=csv)
    except QueryError as exc:
        abort(400, f"{exc}")
    except BadValue as exc:
        current_app.logger.info("table %s refused a value of the request: %s", name, exc)
        abort(
            400,
            f"A value in this query does not fit its column: {exc}. Expected a value "
            "of the column's type.",
        )
    except BadSearch as exc:
        abort(400, bad_search(exc))
    except SourceBusy as exc:
        runtime.metrics.source_busy.labels(name).inc()
        raise ServiceUnavailable(
            f"The table {name!r} is busy ({exc}); try again in {exc.retry_after} s.",
            retry_after=exc.retry_after,
        ) from None
    except QueryTimeout as exc:
        runtime.metrics.query_timeouts.labels(name).inc()
        current_app.logger.info("table %s: %s", name, exc)
        refuse_as(
            fmt,
            503,
            f"This query on {name!r} took too long: it found no first row within "
            f"{exc.seconds * 1000:.0f} ms, and was stopped. To make it cheaper, {TIMEOUT_ADVICE}.",
            advice=TIMEOUT_ADVICE,
        )
    except SourceError as exc:
        current_app.logger.error("cannot open table %s: %s", name, exc)
        abort(503, f"The table {name!r} cannot be read right now; try again later.")
