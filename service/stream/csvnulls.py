"""CSV a column at a time, NULL kept apart from the empty string: ``?null=`` /
``TABLESTREAM_CSV_NULL``.

By default (``empty``) NULL is written as an empty field, the same as an empty string: today's
bytes, which every existing reader of these files gets. The other spellings keep the two apart:

- ``copy`` — PostgreSQL's ``COPY … CSV``: NULL is an empty *unquoted* field, an empty string
  is ``""``. ``COPY … FROM … CSV`` and Python 3.13's reader with ``QUOTE_NOTNULL`` read it back.
- ``\\N`` or ``NULL`` — NULL is that word, unquoted; a text cell that happens to be the word is
  quoted (``"NULL"``). Readers that ignore quotes (pandas, Python's ``csv`` reader before
  3.13) need a word to see NULL: ``pandas.read_csv(..., keep_default_na=False,
  na_values=["\\N"])``.

Python 3.11's csv module cannot write a field unquoted or quoted by our choice
(``QUOTE_NOTNULL`` came in 3.12), so CSV is written here, a column at a time, by the module's
own rule: a field with a comma, a quote, CR or LF is quoted, quotes doubled — and a column
without any of them (most: numbers, dates) is checked in one ``join``; a batch's lines are one
``join`` of the fields and separators. For ``empty`` that is byte for byte the csv module's
output (ragged rows are handed to it), ~3.5x faster on the synthetic rows in process.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..sources import RowStream
from ..sources.base import VALUE_KINDS
from ..sources.cells import format_column, once_per_distinct

__all__ = ["csv_batch_writer", "csv_null_pieces", "null_marker"]


def _needs_quotes(text: str) -> bool:
    """What makes the csv module quote a field (``QUOTE_MINIMAL``, ``,`` and ``"``, CRLF
    lines); four one-character searches, each a ``memchr`` (a regex was ~10x slower)."""
    return "," in text or '"' in text or "\n" in text or "\r" in text


def null_marker(spelling: str) -> str:
    """The text a NULL field holds (unquoted) for a spelling of ``config.settings.CSV_NULLS``:
    empty for ``empty`` and ``copy``, else the word."""
    return "" if spelling in ("empty", "copy") else spelling


def _field(text: str, marker: str | None) -> str:
    if text == marker or _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _fields(cells: Sequence[str | None], marker: str, quoted: str | None) -> list[str]:
    """Each cell's field, None (NULL) as the marker; each distinct value once when few."""
    fields = once_per_distinct(lambda t: marker if t is None else _field(t, quoted), cells)
    if fields is not None:
        return fields
    return [marker if t is None else _field(t, quoted) for t in cells]


def _column(
    texts: Sequence[str], nulls: Sequence[bool] | None, marker: str, quoted: str | None
) -> Sequence[str]:
    """One column's fields: NULLs as the marker, other cells quoted as the csv module would,
    and quoted too when they equal ``quoted`` (the marker; None for ``empty``, whose NULL
    and empty string are alike). A column with nothing to quote (most: numbers, dates, words)
    is checked in one ``join`` and goes out as it is."""
    if nulls is None:
        blob = "".join(texts)
        if quoted is None:
            has_marker = False
        else:
            has_marker = not all(texts) if quoted == "" else quoted in blob and quoted in texts
        if not has_marker and not _needs_quotes(blob):
            return texts
        return _fields(texts, marker, quoted)
    return _fields(
        [None if null else t for t, null in zip(texts, nulls, strict=True)], marker, quoted
    )


def csv_batch_writer(
    kinds: Sequence[str], spelling: str
) -> Callable[[Sequence[Sequence[Any]]], str]:
    """A function from a batch of rows to CSV lines with NULL spelled so: ``typed_batches()``
    rows, or for ``empty`` (NULL already the empty string) ``batches()`` rows too; for
    ``empty`` the lines are byte for byte the csv module's."""
    marker = null_marker(spelling)
    quoted = None if spelling == "empty" else marker
    width = len(kinds)
    # Python values (SQLite's, psycopg's) become the cells' text; the other kinds are text.
    values = not VALUE_KINDS.isdisjoint(kinds)
    # A CSV file's typed columns: an empty cell is NULL (as in NDJSON); its text columns have
    # no NULL, an empty cell is an empty string.
    empty_is_null = [kind.startswith("csv:") for kind in kinds]
    separators = [","] * (width - 1) + ["\r\n"]
    # A one-column row of one empty field would be a blank line: the csv module quotes it
    # (and so does COPY for an empty string, while its NULL is the blank line).
    lone = width == 1 and quoted != ""
    fallback = io.StringIO()
    writer = csv.writer(fallback, lineterminator="\r\n")

    def write(rows: Sequence[Sequence[Any]]) -> str:
        count = len(rows)
        if not count:
            return ""
        if quoted is None and set(map(len, rows)) != {width}:  # ragged rows: as they are
            fallback.seek(0)
            fallback.truncate()
            writer.writerows(rows)
            return fallback.getvalue()
        raw = list(zip(*rows, strict=True))
        texts = list(map(format_column, raw)) if values else raw
        # Fields and separators in one list, a column at a time by slice assignment; one join.
        out: list[str] = [""] * (count * 2 * width)
        for i, (col, sep) in enumerate(zip(raw, separators, strict=True)):
            if empty_is_null[i]:
                nulls: Sequence[bool] | None = None if all(col) else [not v for v in col]
            elif values and quoted is None:
                nulls = None  # ``empty``: NULL's text is the empty string, as formatted
            else:
                nulls = [v is None for v in col] if None in col else None
            column = _column(texts[i], nulls, marker, quoted)
            if lone:
                column = ['""' if f == "" else f for f in column]
            out[2 * i :: 2 * width] = column
            out[2 * i + 1 :: 2 * width] = [sep] * count
        return "".join(out)

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
