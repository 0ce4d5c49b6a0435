"""CSV that keeps NULL apart from the empty string: ``?null=`` / ``TABLESTREAM_CSV_NULL``.

By default (``empty``) NULL is written as an empty field, the same as an empty string: today's
bytes, which every existing reader of these files gets. The other spellings keep the two apart:

- ``copy`` — PostgreSQL's ``COPY … CSV``: NULL is an empty *unquoted* field, an empty string
  is ``""``. ``COPY … FROM … CSV`` and Python 3.12's ``csv.QUOTE_NOTNULL`` read it back.
- ``\\N`` or ``NULL`` — NULL is that word, unquoted; a text cell that happens to be the word is
  quoted (``"NULL"``). Readers that ignore quotes (pandas, Python's ``csv`` before 3.12) need a
  word to see NULL: ``pandas.read_csv(..., keep_default_na=False, na_values=["\\N"])``.

Python 3.11's csv module cannot write a field unquoted or quoted by our choice
(``QUOTE_NOTNULL`` came in 3.12), so these spellings are written here, a column at a time,
by the module's own rule: a field with a comma, a quote, CR or LF is quoted, quotes doubled —
and a column without any of them (most: numbers, dates) is checked in one ``join``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..sources import RowStream
from ..sources.cells import format_batch

__all__ = ["csv_batch_writer", "csv_null_pieces", "null_marker"]

_SPECIAL = (",", '"', "\r", "\n")


def null_marker(spelling: str) -> str:
    """The text a NULL field holds (unquoted) for a spelling of ``config.settings.CSV_NULLS``
    other than ``empty``."""
    return "" if spelling == "copy" else spelling


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _field(text: str, marker: str) -> str:
    if text == marker or any(c in text for c in _SPECIAL):
        return _quoted(text)
    return text


def _column(texts: Sequence[str], nulls: Sequence[bool] | None, marker: str) -> Sequence[str]:
    """One column's fields: NULLs as the marker, other cells quoted as the csv module would,
    and quoted too when they equal the marker."""
    if nulls is None:
        joined = "".join(texts)
        if not any(c in joined for c in _SPECIAL) and marker not in texts:
            return texts
        return [_field(t, marker) for t in texts]
    return [marker if null else _field(t, marker) for t, null in zip(texts, nulls, strict=True)]


def csv_batch_writer(
    kinds: Sequence[str], spelling: str
) -> Callable[[Sequence[Sequence[Any]]], str]:
    """A function from a batch of ``typed_batches()`` rows to CSV lines with NULL spelled so."""
    marker = null_marker(spelling)
    width = len(kinds)
    # A CSV file's typed columns: an empty cell is NULL (as in NDJSON); its text columns have
    # no NULL, an empty cell is an empty string.
    empty_is_null = [kind.startswith("csv:") for kind in kinds]
    line = ",".join(["%s"] * width) + "\r\n"
    fill = line.__mod__
    # A one-column row of one empty field would be a blank line: the csv module quotes it.
    lone = width == 1

    def write(rows: Sequence[Sequence[Any]]) -> str:
        if not rows:
            return ""
        texts = list(zip(*format_batch(rows), strict=True))
        columns = []
        for i, raw in enumerate(zip(*rows, strict=True)):
            if empty_is_null[i]:
                nulls: Sequence[bool] | None = [not v for v in raw] if "" in raw else None
            else:
                nulls = [v is None for v in raw] if None in raw else None
            column = _column(texts[i], nulls, marker)
            if lone and marker != "":
                column = ['""' if f == "" else f for f in column]
            columns.append(column)
        return "".join(map(fill, zip(*columns, strict=True)))

    return write


def csv_null_pieces(
    rows: RowStream, header: str, flush: Callable[[], str], spelling: str
) -> Iterator[str]:
    """The header line (flushed at once), then one piece of CSV per batch, NULL kept."""
    write = csv_batch_writer(rows.kinds or ["text"] * len(rows.columns), spelling)
    yield header
    yield flush()
    for batch in rows.typed_batches():
        yield write(batch)
