"""Filters a row template may use on cell text: ``money`` and ``date``.

Cells arrive as text (``sources/cells.py``), so each filter parses what it needs and gives the
text back unchanged when it cannot: a filter never ends a stream because one cell is not a
number or not a date. Each returns a plain ``str`` (never Markup), so a compiled row template
still escapes its output once per batch (``stream/rowtemplate.py`` relies on ``TEXT_FILTERS``).
Jinja's own ``int`` and ``float`` work too; they give numbers, printed as Python prints them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["FILTERS", "TEXT_FILTERS", "date", "money"]


_MONEY_SPECS = [f",.{places}f" for places in range(10)]


def money(value: Any, places: int = 2) -> str:
    """A number with ``places`` decimals and thousands separators: ``1414.8`` → ``1,414.80``.

    Empty (NULL) stays empty; text that is not a number is shown as it is.
    """
    try:
        return format(float(value), _MONEY_SPECS[places] if 0 <= places < 10 else f",.{places}f")
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def date(value: Any, format: str = "%Y-%m-%d") -> str:  # strftime's name for it
    """An ISO date or date-time (``2023-01-01 00:00:29``) in ``format`` (strftime).

    Empty (NULL) stays empty; text that is not an ISO date is shown as it is.
    """
    try:
        return dt.datetime.fromisoformat(value).strftime(format)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


FILTERS = {"money": money, "date": date}
TEXT_FILTERS = frozenset(FILTERS)
