"""PostgreSQL writes the cell text itself, exactly as ``cells.format_value`` would have.

Loading a row the usual way builds a Python object per cell (``Decimal``, a time-zone-aware
``datetime``) only for ``cells`` to turn it back into text: on a table of (int, text,
timestamptz, numeric, text) that was ~85k rows/s against ~350k for the fetch alone. Here the
query asks the server for text instead, column by column, in the spelling ``format_value``
uses — NULL as the empty string, ``true``/``false``, ISO timestamps with a space, microseconds
only when there are any and the session's offset as ``+HH:MM``, bytes as ``\\x`` and hex —
so psycopg's C text loader hands out ready ``str`` cells and no Python code runs per cell. The
server does that work in its own process, on another core.

Only types whose text this reproduces exactly are asked for as text; any other column (floats,
whose ``repr`` PostgreSQL does not write, ``bpchar``, ``time``, intervals, JSON, arrays, ...)
is loaded as before and formatted by ``cells.format_batch``. ``tests/test_pg_text.py`` checks
every type, old path against new, in several time zones.

Dates and timestamps Python cannot hold (infinity, BC, after year 9999), which used to fail
the stream when psycopg refused to load them, are shown as PostgreSQL writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql
from psycopg.postgres import types

__all__ = ["TEXT_OIDS", "copy_select", "text_select"]


def _oid(name: str) -> int:
    info = types.get(name)
    assert info is not None, name
    return info.oid


_AS_TEXT = "coalesce({c}::text, '')"
_DAY = "to_char({c}, 'YYYY-MM-DD')"
_WHOLE_SECOND = "date_trunc('second', {c}) = {c}"
_SECOND = (
    f"CASE WHEN {_WHOLE_SECOND} THEN to_char({{c}}, 'YYYY-MM-DD HH24:MI:SS')"
    " ELSE to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US') END"
)
_SECOND_OFFSET = (
    f"CASE WHEN {_WHOLE_SECOND} THEN to_char({{c}}, 'YYYY-MM-DD HH24:MI:SSTZH:TZM')"
    " ELSE to_char({c}, 'YYYY-MM-DD HH24:MI:SS.USTZH:TZM') END"
    # An offset with seconds (local mean time before standard time; none in the tz database
    # after Liberia's in 1972): to_char has no field for them, extract has, at a cost.
    " || CASE WHEN {c} >= '1972-06-01' OR mod(extract(timezone FROM {c})::int, 60) = 0 THEN ''"
    " ELSE ':' || lpad(mod(abs(extract(timezone FROM {c})::int), 60)::text, 2, '0') END"
)


def _in_python_range(low: str, high: str, text: str) -> str:
    # NULL falls to the ELSE branch, whose cast keeps it NULL for coalesce.
    return (
        f"coalesce(CASE WHEN {{c}} BETWEEN '{low}' AND '{high}' THEN {text} "
        "ELSE {c}::text END, '')"
    )


_LAST_DAY = "9999-12-31"
_LAST_MOMENT = "9999-12-31 23:59:59.999999"
_TEMPLATES: dict[int, str] = {
    **{
        _oid(name): _AS_TEXT
        for name in ("int2", "int4", "int8", "oid", "numeric", "bool", "uuid", "varchar", "name")
    },
    _oid("text"): "coalesce({c}, '')",
    _oid("bytea"): "coalesce('\\x' || encode({c}, 'hex'), '')",
    _oid("date"): _in_python_range("0001-01-01", _LAST_DAY, _DAY),
    _oid("timestamp"): _in_python_range("0001-01-01", _LAST_MOMENT, _SECOND),
    _oid("timestamptz"): _in_python_range("0001-01-01", _LAST_MOMENT, _SECOND_OFFSET),
}


def _keeping_null(template: str) -> str:
    """The same text with NULL left NULL (None in Python): the template without its coalesce."""
    assert template.startswith("coalesce(") and template.endswith(", '')"), template
    return template.removeprefix("coalesce(").removesuffix(", '')")


_TEMPLATES_KEEPING_NULL = {oid: _keeping_null(t) for oid, t in _TEMPLATES.items()}
# The types whose text can be the empty string (pgcopy's ``empty`` spelling makes it NULL).
_MAY_BE_EMPTY = frozenset(_oid(name) for name in ("text", "varchar", "name"))
# Under ``DateStyle`` ISO (the session reports it) a date's own output is ``to_char``'s in range
# and the fallback's outside it, and so is a whole-second timestamp's (a fraction is written
# without trailing zeros there, so those keep ``to_char``): the dearest expressions above, on
# every row, are left out. NULL kept; ``text_select`` adds the coalesce where NULL is ''.
_ISO_DATES = {
    _oid("date"): "{c}::text",
    _oid("timestamp"): f"CASE WHEN {_WHOLE_SECOND} OR NOT {{c}} BETWEEN '0001-01-01' AND "
    f"'{_LAST_MOMENT}' THEN {{c}}::text ELSE to_char({{c}}, 'YYYY-MM-DD HH24:MI:SS.US') END",
}
# What COPY may write through the type's own output function: ``{c}::text`` calls that same
# function, so the column alone is the same text.
_NATIVE = dict.fromkeys(
    (
        _oid(n)
        for n in ("int2", "int4", "int8", "oid", "numeric", "uuid", "text", "varchar", "name")
    ),
    "{c}",
)
TEXT_OIDS = frozenset(_TEMPLATES)
"""The types the server writes as text; other columns come as psycopg loads them."""


def text_select(
    names: Sequence[str],
    type_oids: Sequence[int],
    keep_null: bool = False,
    empty_as_null: bool = False,
    iso_dates: bool = False,
) -> tuple[sql.Composable, bool]:
    """The select list for a table's columns, and whether every column comes back as text.

    Each column the server can write is replaced by its text expression under its own name;
    others are selected as they are. (A PostgreSQL table or view never repeats a column name,
    so every column can be referred to by its name.) With ``keep_null`` a NULL stays NULL
    instead of becoming the empty string: for the formats that tell them apart; with
    ``empty_as_null`` too, an empty string becomes NULL (``pgcopy``'s CSV for ``null=empty``).
    ``iso_dates``: the session's ``DateStyle`` is ISO, so dates and whole-second timestamps are
    the server's own text (~0.74x the backend's time for the bench's orders).
    """
    null_kept = keep_null or empty_as_null
    templates = _TEMPLATES_KEEPING_NULL if null_kept else _TEMPLATES
    if iso_dates:
        iso = {o: t if null_kept else f"coalesce({t}, '')" for o, t in _ISO_DATES.items()}
        templates = templates | iso
    return _select(names, type_oids, templates, empty_as_null)


def copy_select(
    names: Sequence[str], type_oids: Sequence[int], empty_as_null: bool, iso_dates: bool
) -> tuple[sql.Composable, bool]:
    """``text_select`` with NULL kept, for ``COPY`` (``pgcopy``), which writes every column
    through its type's output function: a column whose own output already is ``cells``'
    spelling is selected as it is, with no expression for the backend to evaluate per row
    (integers, numeric, uuid, text; with ``iso_dates``, the session's ``DateStyle`` being ISO,
    dates and whole-second timestamps too). The bench's orders: the backend's COPY ~1.8x
    ``SELECT *``'s time with every column an expression, ~1.2x this way (docs/performance.md).
    """
    templates = _TEMPLATES_KEEPING_NULL | _NATIVE
    if iso_dates:
        templates |= _ISO_DATES | {_oid("date"): "{c}"}
    return _select(names, type_oids, templates, empty_as_null)


def _select(
    names: Sequence[str], type_oids: Sequence[int], templates: dict[int, str], empty_as_null: bool
) -> tuple[sql.Composable, bool]:
    items: list[sql.Composable] = []
    all_text = True
    for name, oid in zip(names, type_oids, strict=True):
        column = sql.Identifier(name)
        template = templates.get(oid)
        if template is None:
            all_text = False
            items.append(column)
            continue
        if empty_as_null and oid in _MAY_BE_EMPTY:
            template = f"NULLIF({template}, '')"
        text = sql.SQL(template.replace("{c}", "{0}")).format(column)
        items.append(sql.SQL("{} AS {}").format(text, column))
    return sql.SQL(", ").join(items), all_text
