"""A PostgreSQL search's plan, chosen per query from a look at the next rows in key order.

A GIN index hands its matches in no order, so a search in key order either sorts every match
before its first row, or walks the key's index testing each row (recomputing ``to_tsvector``
of each row for an expression index). Which is faster depends on how many rows match, and the
planner guesses that from word statistics: a phrase of two common words (``"fragile heavy"``,
a tenth of the 1M-row demo) it guessed at a hundredth, so it sorted ~100k matches, each
checked again (0.56-0.96 s to the first row, or the time limit's 503); and a walk for a word in
no row reads the whole table (2.3-3.3 s).

So before its cursor is declared, a search in key order tests the next ``PROBE_ROWS`` rows of
that order (after ``_after``, with every filter, through the key's index): ``d``, the share
that matches, says how far a walk goes for its rows. ``F`` rows cost a walk ``F/d`` rows
tested and a sort ``d·T`` matches (``T``: the table's rows, ``pg_class.reltuples``): equal at
``d = sqrt(F/T)``, where both read ``sqrt(F·T)`` rows. With ``F`` the first fetch's rows
(``FIRST_ROWS``) and then a later fetch's (``fetch_rows``):

- ``WALK``: ``d`` above both: the cursor walks (bitmap scans off);
- ``WALK_THEN_SORT``: above the first only (the demo's ``doohickey fragile``, an eightieth):
  the first rows are walked, then the stream declares a second cursor, the same query sorted
  (``sort_matches``) past them (``OFFSET``, in the key's total order and the transaction's one
  REPEATABLE READ snapshot, so its rows are exactly the walk's next ones): walked to its end,
  that search took 2.9-3.4 s, sorted after its first rows 0.1-0.4 s;
- ``SORT``: below both: the index's matches, sorted (plain index scans off).

Sequential scans are off for all three, with ``SET LOCAL``, so nothing outlives the stream's
transaction. The probe stops at the matches it needs: a dense search pays a few rows for it,
a sparse one ``PROBE_ROWS``. The first ``FETCH``, the one the time limit bounds (the probe
within the same limit), asks ``FIRST_ROWS``: a screen's worth, not a whole fetch. Only how
PostgreSQL finds the rows changes; they are the query's own. JIT is off for a search: a walk is
costed as a whole-table walk, past ``jit_above_cost``, and compiling it took 3-5 ms before the
first row (median of 10, on the demo).
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
    probe = (
        f"SELECT count(*) FROM (SELECT 1 FROM {name}{walk.where} AND {walk.key} <= "
        f"(SELECT k FROM (SELECT {walk.key} AS k FROM {name}{walk.window} LIMIT %s) w "
        "ORDER BY k DESC LIMIT 1) LIMIT %s) s"
    )
    (found,) = conn.execute(probe, (*walk.params, PROBE_ROWS, needed)).fetchone() or (0,)
    return found


def _set(conn: psycopg.Connection, **settings: str) -> None:
    """``SET LOCAL`` each of ``settings``, in one round trip."""
    calls = ", ".join("set_config(%s, %s, true)" for _ in settings)
    conn.execute(f"SELECT {calls}", [part for item in settings.items() for part in item])
