"""A PostgreSQL search's plan, chosen per query from a look at the next rows in key order.

A GIN index hands its matches in no order, so a search in key order either sorts every match
before its first row, or walks the key's index testing each row (the condition recomputes
``to_tsvector`` of each row an expression index is on). Which is faster depends on how many
rows match, and the planner only guesses that from word statistics: a phrase of two common
words (``"fragile heavy"``, in a tenth of the 1M-row demo) it guesses at a hundredth, so it
sorted ~100k matches, each checked again (0.6-1.0 s to the first row); a stored generated
column's word it has never seen it guessed common, and walked the whole table (0.5-0.7 s).

So before its cursor is declared, a search in key order tests the next ``PROBE_ROWS`` rows of
that order (after ``_after``, with every filter): ``d``, the share that matches, is how often
the walk finds a row there. The walk's first ``F`` rows then cost ``F/d`` rows tested, a sort
``d·T`` matches (``T``, the table's rows by ``pg_class.reltuples``); the two are equal at
``d = sqrt(F/T)`` (1 in 177 for 32 rows of 1M), where both read ``sqrt(F·T)`` rows. At or above
it the stream walks (bitmap scans off), below it sorts (plain index scans off; sequential
scans off for both), with ``SET LOCAL`` in the stream's own transaction, so nothing outlives
it. The probe stops at the matches it needs: a dense search pays a few rows for it, a sparse
one ``PROBE_ROWS``.

``FIRST_ROWS`` is ``F``: a search's first ``FETCH``, the one the time limit bounds, asks for
that many rows (the fetches after it for ``fetch_rows``), so that a walk's first byte waits
for the rows of a screen, not of a whole fetch. Either way the rows are the query's own,
exactly: only how PostgreSQL finds them changes. JIT compilation is off for a search's
cursor: a walk is costed as a whole-table walk, past ``jit_above_cost``, and its compilation
was paid before the first row for rows a page never reads.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from ..query.sql import KeyWalk

__all__ = [
    "FIRST_ROWS",
    "PLANNER",
    "PROBE_ROWS",
    "SORT",
    "WALK",
    "WALK_THEN_SORT",
    "plan_search",
    "sort_matches",
]

PROBE_ROWS = 512
"""Rows of the key's order the probe tests at most (~2-5 ms of ``to_tsvector`` on the demo)."""

FIRST_ROWS = 32
"""Rows of a search's first ``FETCH``: a screen's worth."""


WALK, WALK_THEN_SORT, SORT, PLANNER = "walk", "walk, then sort", "sort", "planner"


def plan_search(
    conn: psycopg.Connection,
    table: sql.Identifier,
    walk: KeyWalk | None,
    first_rows: int,
    later_rows: int,
) -> str:
    """Set the planner for a search's cursor in ``conn``'s transaction and say how it will find
    its rows: ``WALK``; ``WALK_THEN_SORT`` (the first rows walked, the rest sorted by a second
    cursor: ``sort_matches``); ``SORT``; ``PLANNER`` (not in key order, or a table of unknown
    size: left to PostgreSQL). ``first_rows``: those of the first fetch (offset included);
    ``later_rows``: those of each fetch after it."""
    _set(conn, jit="off")
    if walk is None:
        return PLANNER
    (rows,) = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table.as_string(conn),)
    ).fetchone() or (-1,)
    if rows <= 0:  # never analyzed, a view, a partitioned table
        return PLANNER
    first, later = (math.ceil(PROBE_ROWS * math.sqrt(n / rows)) for n in (first_rows, later_rows))
    # No sequential scan either way: it would read the whole table for a walk's first rows,
    # or for a few matches the index finds.
    _set(conn, enable_bitmapscan="off", enable_seqscan="off")
    if first <= PROBE_ROWS:
        found = _matches(conn, table, walk, min(max(first, later), PROBE_ROWS))
        if found >= first:
            return WALK if found >= later else WALK_THEN_SORT
    sort_matches(conn)
    return SORT


def sort_matches(conn: psycopg.Connection) -> None:
    """Have the next cursor of ``conn``'s transaction sort the index's matches (no plain index
    scan, so no walk of the key's)."""
    _set(conn, enable_bitmapscan="on", enable_indexscan="off")


def _matches(conn: psycopg.Connection, table: sql.Identifier, walk: KeyWalk, needed: int) -> int:
    """How many of the next ``PROBE_ROWS`` rows in ``walk``'s order match it, counted up to
    ``needed``: those rows read through the key's index (bitmap and sequential scans are off
    here), each tested, nothing else."""
    name = table.as_string(conn).replace("%", "%%")
    op, last = (">=", "ASC") if walk.descending else ("<=", "DESC")
    probe = (
        f"SELECT count(*) FROM (SELECT 1 FROM {name}{walk.where} AND {walk.key} {op} "
        f"(SELECT k FROM (SELECT {walk.key} AS k FROM {name}{walk.window} LIMIT %s) w "
        f"ORDER BY k {last} LIMIT 1) LIMIT %s) s"
    )
    (found,) = conn.execute(probe, (*walk.params, PROBE_ROWS, needed)).fetchone() or (0,)
    return found


def _set(conn: psycopg.Connection, **settings: str) -> None:
    """``SET LOCAL`` each of ``settings``, in one round trip."""
    calls = ", ".join("set_config(%s, %s, true)" for _ in settings)
    conn.execute(f"SELECT {calls}", [part for item in settings.items() for part in item])
