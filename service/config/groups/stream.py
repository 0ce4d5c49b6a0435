"""The stream and what a request may ask of it: chunk size, gzip, how CSV and NDJSON write NULLs
and decimals, the bounds of sorts and queries, whether the access log shows filter values, the
page's row window, the largest limit and offset.

``CSV_NULLS`` and ``NDJSON_DECIMALS`` live here because they are both a setting's choices and
what the ``?null=`` and ``?decimals=`` parameters accept (``views/tables.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import KIB, MIB, boolean, choice, integer
from ..declare import setting

__all__ = ["CSV_NULLS", "NDJSON_DECIMALS", "StreamSettings"]

CSV_NULLS = ("empty", "copy", "\\N", "NULL")
"""How CSV writes NULL (``stream/csvnulls.py``); also what ``?null=`` accepts."""
NDJSON_DECIMALS = ("string", "number")
"""How NDJSON writes decimals (``stream/ndjson.py``); also what ``?decimals=`` accepts."""


@dataclass(frozen=True)
class StreamSettings:
    """The stream: its chunks and encodings, and the bounds of what a request may ask."""

    chunk_bytes: int = setting(
        integer(1 * KIB, 4 * MIB, "bytes"),
        "32768",
        "target size of each HTTP chunk; template output is coalesced up to this many bytes",
    )
    gzip: bool = setting(
        boolean,
        "true",
        "gzip the table stream chunk by chunk when the client accepts it (Accept-Encoding)",
    )
    gzip_level: int = setting(
        integer(1, 9),
        "1",
        "gzip level as zlib's: 1 is fastest (the stream's CPU cost), 9 smallest; 1-3 run on ISA-L",
    )
    csv_null: str = setting(
        choice(*CSV_NULLS),
        "empty",
        "how CSV writes NULL (?null= per request): empty = an empty field like an empty string "
        "(the bytes before it was a choice); copy = PostgreSQL COPY CSV's (NULL an empty "
        'unquoted field, an empty string ""); \\N or NULL = that word unquoted',
    )
    ndjson_decimals: str = setting(
        choice(*NDJSON_DECIMALS),
        "number",
        "how NDJSON writes decimals such as PostgreSQL numeric (?decimals= per request): number "
        "= 530.99, every digit in the JSON text, a number as from any source; string = "
        '"530.99", for readers whose floats would round',
    )
    sort_rows: int = setting(
        integer(0, 1_000_000),
        "10000",
        "largest offset + limit a sort may ask of a source that is not a database (CSV, "
        "synthetic), which sorts in memory; databases sort themselves, without this bound",
    )
    query_time_limit_ms: int = setting(
        integer(0, 3_600_000, "ms"),
        "1000",
        "longest a database query may take from opening to its first row (SQLite interrupted, "
        "PostgreSQL statement_timeout); past it a 503 says how to ask a cheaper query; once rows "
        "flow there is no limit; 0 = none",
    )
    facet_time_limit_ms: int = setting(
        integer(1, 60_000, "ms"),
        "200",
        "longest one facet's count (GROUP BY, /tables/<name>/facets.json) may take; past it the "
        "facet says timed_out",
    )
    log_filter_values: bool = setting(
        boolean,
        "true",
        "write filter values (?status=paid) in the access log; false logs the filters' names "
        "with their values replaced by REDACTED (for tables whose values are sensitive)",
    )
    page_rows: int = setting(
        integer(0, 10_000_000),
        "50000",
        "rows a table page keeps in the reader's browser: past them its script releases rows far "
        "from view and fetches them back by range (?fragment=rows); 0 keeps every row",
    )
    max_rows: int = setting(integer(1, 10**12), "10000000", "largest ?limit= a request may ask for")
    max_offset: int = setting(
        integer(0, 10**15),
        "1000000000000",
        "largest ?offset= a request may ask for",
    )
