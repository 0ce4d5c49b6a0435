"""Typed NDJSON's numbers JSON cannot write as Python does: floats that are not finite, decimals.

JSON has no ``NaN`` or ``Infinity``: such a float (or decimal) is the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``, the spellings of JavaScript and PostgreSQL. A decimal
(PostgreSQL ``numeric``, a CSV sidecar's ``decimal``) is a JSON number written as its exact
decimal text, so no digit is lost, or a string when ``decimals=string`` asks for one; a decimal
with more whole digits than a 64-bit integer holds is written in ``e`` notation, because some
readers fail the whole file on it otherwise (``_WHOLE_DIGITS``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from .ndjsontext import QUOTED, Column, Encode, Encoded, text_column

__all__ = ["decimal_json", "float_json", "numeric_text_column"]

_NAN = '"NaN"'
_NOT_FINITE = {"nan": _NAN, "inf": '"Infinity"', "-inf": '"-Infinity"'}
_NUMERIC_NOT_FINITE = {"NaN": _NAN, "Infinity": '"Infinity"', "-Infinity": '"-Infinity"'}


def float_json(value: float) -> str:
    """A float as JSON: its ``repr``, or the string ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    text = float.__repr__(value)
    return _NOT_FINITE.get(text, text)


_WHOLE_DIGITS = 18
"""Decimals with more digits before the point are written in scientific notation: readers
that parse a number's integer part into 64 bits (pandas' ujson: "Value is too big!") fail the
whole file on ``1000000000000000000000``, and read ``1.000000000000000000000e+21`` (10**18 <
2**63, so 18 digits always fit)."""


def _long_decimal(text: str) -> str:
    """A decimal's JSON number (plain text, NaN/Infinity already strings) with every digit:
    as it is, or, past ``_WHOLE_DIGITS`` before the point, as ``Decimal``'s ``e`` format."""
    point = text.find(".")
    whole = (point if point >= 0 else len(text)) - text.startswith("-")
    if whole <= _WHOLE_DIGITS or text.startswith('"'):
        return text
    return format(Decimal(text), "e")


def _decimal_numbers(cells: list[str]) -> list[str]:
    """A column of decimals' JSON numbers, a long one made safe (one ``max`` when none is)."""
    if cells and max(map(len, cells)) > _WHOLE_DIGITS + 1:
        return list(map(_long_decimal, cells))
    return cells


def decimal_json(as_number: bool) -> Callable[[Decimal], str]:
    """A ``Decimal``'s JSON: its exact text as a number, or as a string when not ``as_number``."""
    if not as_number:
        return lambda value: QUOTED(format(value, "f"))

    def number(value: Decimal) -> str:
        text = format(value, "f")
        return _long_decimal(_NUMERIC_NOT_FINITE.get(text, text))

    return number


def numeric_text_column(as_number: bool) -> Encode:
    """A column of decimal text (``numeric``: PostgreSQL's own spelling) as numbers or strings."""
    if as_number:

        def numbers(col: Column) -> Encoded:
            if None in col:
                cells = ["null" if v is None else _NUMERIC_NOT_FINITE.get(v, v) for v in col]
                return False, _decimal_numbers(cells)
            return False, _decimal_numbers(list(map(_NUMERIC_NOT_FINITE.get, col, col)))

        return numbers
    return text_column  # decimal text never needs escaping: quoted as it is
