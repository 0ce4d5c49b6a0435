"""A batch of rows → HTML, escaped once per batch instead of once per cell.

Rendering rows cell by cell in Jinja costs a dozen yields, escapes and attribute lookups per row
and was the service's bottleneck (measured in docs/BENCHMARKS.md). The row markup still lives in
the template, which passes it in as three strings; this filter only joins.

The trick: cells of a batch are joined with the ASCII unit separator (U+001F) and rows with the
record separator (U+001E), the whole text is escaped in one call of markupsafe's C speedups, and
the separators are then replaced by the template's markup. Escaping leaves both separators
alone, so this is byte-identical to escaping every cell. Most batches hold none of the five
characters escaping changes (``has_markup_characters``: five searches at memory speed), and
skip the escape altogether. A cell that itself contains a separator
would be mistaken for a boundary; counting the separators catches that, and such a batch takes
the slow path that escapes cell by cell. This module does no I/O and knows nothing of Flask.

``ROW_MARKUP`` is the one definition of the default row markup: the filter's defaults, the
benchmark's hand-written variant and the load test's row counter all read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from markupsafe import Markup, escape

__all__ = ["ROW_MARKUP", "RowMarkup", "has_markup_characters", "rows_html"]


class RowMarkup(NamedTuple):
    start: str  # before the first cell of a row
    between: str  # between two cells
    end: str  # after the last cell


ROW_MARKUP = RowMarkup("<tr><td>", "</td><td>", "</td></tr>\n")

_CELL = "\x1f"
_ROW = "\x1e"


def rows_html(
    batch: Sequence[Sequence[str]],
    row_start: str = ROW_MARKUP.start,
    cell_between: str = ROW_MARKUP.between,
    row_end: str = ROW_MARKUP.end,
) -> Markup:
    """Every row of ``batch`` as ``row_start + cells joined by cell_between + row_end``.

    Cells are escaped; the three markup strings come from the template and are trusted. Every
    table has at least one column (sources refuse tables without), so every row has a cell.
    """
    if not batch:
        return Markup("")
    text = _ROW.join(map(_CELL.join, batch))
    cell_breaks = sum(map(len, batch)) - len(batch)
    if text.count(_CELL) != cell_breaks or text.count(_ROW) != len(batch) - 1:
        return _rows_html_per_cell(batch, row_start, cell_between, row_end)
    if has_markup_characters(text):
        text = str(escape(text))
    body = text.replace(_CELL, cell_between).replace(_ROW, row_end + row_start)
    return Markup(row_start + body + row_end)


def has_markup_characters(text: str) -> bool:
    """Whether HTML escaping would change ``text``: it holds one of ``& < > " '``.

    These five are all markupsafe's ``escape`` replaces; a text without them escapes to itself.
    """
    return "&" in text or "<" in text or ">" in text or '"' in text or "'" in text


def _rows_html_per_cell(
    batch: Sequence[Sequence[str]], row_start: str, cell_between: str, row_end: str
) -> Markup:
    return Markup(
        "".join([row_start + cell_between.join(map(escape, row)) + row_end for row in batch])
    )
