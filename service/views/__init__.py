"""Routes: read and check the request, pick the table, hand back the stream.

Everything that can be refused is refused here, before the first byte: an unknown table is a
404 that lists the known ones, a bad ``limit``/``offset`` a 400 that says what is allowed, a
source that cannot be opened a 503. Once the body starts, the status line is gone and failures
are the stream's business (``stream/body.py``). Views know no SQL and no file paths.

- ``params``: the query string read and checked (numbers, choices, the table and its format,
  the filters), each refusal a 400 that says what is allowed;
- ``tables``: ``/tables/<name>`` — the stream (page, CSV, NDJSON), rows by range, the table's
  description — and the stream slot it takes; ``response`` makes the open rows a fragment,
  HEAD's headers or the stream's body, ``description`` answers ``/tables/<name>.json``;
- ``small``: what must answer at once whatever the streams do: the index, ``/healthz``,
  ``/readyz``, ``/streams/<id>``.
"""

from __future__ import annotations

from flask import Blueprint

__all__ = ["PACERS_KEY", "ROW_TEMPLATES_KEY", "bp"]

bp = Blueprint("tables", __name__)
ROW_TEMPLATES_KEY = "tablestream.row_templates"  # app.extensions: a stream.rowtemplate.RowTemplates
PACERS_KEY = "tablestream.pacers"  # app.extensions: a stream.pacing.Pacers

from . import facets, small, tables  # noqa: E402, F401  (their routes register on bp)
