"""Filters a row template may use on cell text: ``money`` and ``date``.

Cells arrive as text (``sources/cells.py``), so each filter parses what it needs and gives the
text back unchanged when it cannot: a filter never ends a stream because one cell is not a
number or not a date. Each returns a plain ``str`` (never Markup), so a compiled row template
still escapes its output once per batch (``stream/rowtemplate.py`` relies on ``TEXT_FILTERS``).
Jinja's own ``int`` and ``float`` work too; they give numbers, printed as Python prints them.

``money_column`` is ``money`` over a whole column, for the batch path of a compiled row template:
``format(float(v), ",.2f")`` costs ~0.4 µs a value, most of it the thousands grouping, so a
column already written as a plain amount (``1414.8``, ``9190.00``: what SQLite's REAL and
PostgreSQL's numeric(12,2) give) is regrouped as text instead, checked a batch at a time by one
regular expression. A column of amounts with exactly two decimals (the common case) is regrouped
without a line of Python per value (``_grouped``): each amount padded to 12 characters, commas
placed by strided copies of those bytes, padding deleted — ~0.2 µs a value instead of ~0.45.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["FILTERS", "TEXT_FILTERS", "date", "money", "money_column"]


_MONEY_SPECS = [f",.{places}f" for places in range(10)]


def money(value: Any, places: int = 2) -> str:
    """A number with ``places`` decimals and thousands separators: ``1414.8`` → ``1,414.80``.

    Empty (NULL) stays empty; text that is not a number is shown as it is.
    """
    try:
        return format(float(value), _MONEY_SPECS[places] if 0 <= places < 10 else f",.{places}f")
    except (TypeError, ValueError):
        return "" if value is None else str(value)


# One amount per line: no sign, no leading zero, under a billion, one or two decimals, or empty.
# Such text has at most 11 significant digits, so float() gives the double nearest to it, well
# within 0.005 of it, and format(..., ",.2f") prints those same digits back: padding to two
# decimals and grouping the integer part by threes is the whole of what it does to them.
_AMOUNT = r"(?:(?:0|[1-9][0-9]{0,8})\.[0-9]{%s})?"
_TWO_PLACES = re.compile(f"{_AMOUNT % '2'}(?:\n{_AMOUNT % '2'})*")
_ONE_OR_TWO = re.compile(f"{_AMOUNT % '1,2'}(?:\n{_AMOUNT % '1,2'})*")


def money_column(values: Sequence[str]) -> list[str]:
    """``money`` of every value, or an exception where ``money`` would show a value as it is.

    The batch path's ``|money`` of a cell: a batch with a value that is not a number (or is
    None) raises here, and the compiled row template renders that batch row by row, where
    ``money`` itself runs.
    """
    joined = "\n".join(values)
    if joined.count("\n") == len(values) - 1:
        grouped = _grouped(values, joined)
        if grouped is not None:
            return grouped
        if not _TWO_PLACES.fullmatch(joined):
            if not _ONE_OR_TWO.fullmatch(joined):
                return [format(float(v), ",.2f") if v else "" for v in values]
            values = [v + "0" if v[-2:-1] == "." else v for v in values]
        return [
            v
            if len(v) < 7
            else v[:-6] + "," + v[-6:]
            if len(v) < 10
            else v[:-9] + "," + v[-9:-6] + "," + v[-6:]
            for v in values
        ]
    return [format(float(v), ",.2f") if v else "" for v in values]


_DIGITS_AND_DOTS = re.compile(r"[0-9.\n]*")
_COMMA_AFTER_A_DIGIT = bytes.maketrans(b"0123456789", b",,,,,,,,,,")  # padding stays " "


def _grouped(values: Sequence[str], joined: str) -> list[str] | None:
    r"""``money`` of a column of two-decimal amounts (or empty values), or None for another.

    Each value is padded to 12 characters (``999999999.99`` is the longest amount), so every
    digit has a fixed place in its record: the checks below are counts over every 12th byte,
    and the output is 15 bytes a record (two commas, a newline) filled by 12 strided copies; a
    comma goes out only where a digit stands before it, and the padding is deleted at the end.
    Accepted: one line per value (the caller checked), nothing but digits and dots, at most 12
    characters, and every non-empty value ``(0|[1-9][0-9]{0,8})\.[0-9]{2}`` — the same
    amounts as ``_TWO_PLACES``, so the same reason makes the text equal to ``money``'s.
    """
    n = len(values)
    if not _DIGITS_AND_DOTS.fullmatch(joined) or joined.count("\n0") != joined.count("\n0."):
        return None
    if joined[:1] == "0" and joined[1:2] != ".":  # a leading zero in the first value
        return None
    padded = (("%12s" * n) % tuple(values)).encode("ascii")
    if len(padded) != 12 * n:  # a value longer than 12 characters
        return None
    empty = padded[11::12].count(b" ")
    if not padded.count(b".") == padded[9::12].count(b".") == n - empty:
        return None  # not one dot per amount, three from its end
    if padded[8::12].count(b" ") != empty or padded[10::12].count(b" ") != empty:
        return None  # no digit before the dot, or one decimal
    out = bytearray(15 * n)
    for j in range(3):
        out[j::15] = padded[j::12]
        out[j + 4 :: 15] = padded[j + 3 :: 12]
    out[3::15] = padded[2::12].translate(_COMMA_AFTER_A_DIGIT)
    out[7::15] = padded[5::12].translate(_COMMA_AFTER_A_DIGIT)
    for j in range(6, 12):
        out[j + 2 :: 15] = padded[j::12]
    out[14::15] = b"\n" * n
    return out.translate(None, b" ").decode("ascii").split("\n")[:-1]


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
