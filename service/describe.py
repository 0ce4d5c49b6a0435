"""A table described for programs: ``/tables/<name>.json``, and the name a download carries.

A job that pulls ``orders.csv`` every night, or a pipeline that loads NDJSON, wants to check the
table's shape first: its columns with their types (as the query compares them and as the source
declares them) and nullability where the source knows it, the key, whether ``_search`` works,
the row count (at most 10 s old, None when unknown: ``sources/counts.py``), the URL of each
format and what the query string accepts. It is small and not streamed; an ``ETag`` (a hash of
the body) lets a client ask again for nothing but a 304.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .query import visible_key
from .query.spec import LOOKUPS, RESERVED, Query
from .sources.base import Table
from .stream.formats import FORMATS

__all__ = ["describe", "download_name", "etag"]


def describe(
    table: Table, hidden: frozenset[str], sort_rows: int, pushed_down: bool, row_count: int | None
) -> dict[str, Any]:
    """The description of ``table`` without the ``hidden`` columns (SourceError if unreadable)."""
    columns = [c for c in table.column_details() if c["name"] not in hidden]
    key = visible_key(table, hidden)
    index = table.search_index()
    return {
        "name": table.name,
        "source": table.kind,
        "columns": columns,
        "key": key,
        "row_count": row_count,
        "formats": {
            name: f"/tables/{quote(table.name)}" + ("" if name == "html" else f".{name}")
            for name in FORMATS
        },
        "query": {
            "filters": "COLUMN=VALUE or COLUMN__LOOKUP=VALUE, combined with AND",
            "lookups": list(LOOKUPS),
            "options": sorted(RESERVED),
            "sort": "by the database"
            if pushed_down
            else f"in memory, with limit and offset + limit <= {sort_rows}",
            "keyset": key is not None,
            # _search: an index over columns this caller may all see (views/params.py)
            "search": index is not None and not index.hidden_from(hidden),
            "docs": "docs/queries.md",
        },
    }


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def as_json(description: Mapping[str, Any]) -> bytes:
    return (json.dumps(description, ensure_ascii=False, indent=2) + "\n").encode()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(table: str, q: Query, suffix: str) -> tuple[str, str]:
    """The file name of a download, plain ASCII and as RFC 5987 UTF-8: ``orders.csv``, or with
    its filters and sort, ``orders_status-refunded_sort-total.csv``."""
    parts = [table]
    parts += [f"{f.param}-{f.text}" for f in q.filters]
    if q.search is not None:
        parts.append(f"search-{q.search}")
    if q.sort:
        parts.append(f"sort{'-desc' if q.descending else ''}-{q.sort}")
    full = "_".join(parts)[:120] + f".{suffix}"
    ascii_name = _UNSAFE.sub("-", full).strip("-") or f"table.{suffix}"
    return ascii_name, quote(full, safe="")


def content_disposition(names: Sequence[str]) -> str:
    ascii_name, utf8 = names
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8}"
