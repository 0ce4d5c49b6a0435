"""A page's resume points, written among its rows so that a cut page can continue itself.

Chromium drops the unparsed tail of a cut document, the error marker with it
(docs/browser-page.md), so the marker's resume point seldom reaches the page's script. So after
the first batch of rows and every ``EVERY``-th batch after it, a page's rows are followed by
``<!--ts-after URL-->``: where the stream resumes after that batch's last row (``resume``, the
stream's ``query/links.py`` ``resume_url``: the URL the marker would carry had the stream been
cut there), percent-encoded, so it can never close the comment. The script continues from the
last one it parsed (templates/static/tablestream.js).

A signed URL costs tens of microseconds: made for every batch of 256 rows (in the template) it
slowed a 1M-row page by ~5 %; every 8th batch, from Python, it is one counter a batch, and a cut
page reads at most 2,047 rows again. No I/O, no Flask; fragments (``fragments.py``) have none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from ..sources.base import Row

__all__ = ["EVERY", "comment", "with_resume_points"]

EVERY = 8
"""Batches between two resume points."""


def comment(url: str | None) -> Markup:
    """The resume point ``url`` as the page carries it (nothing for None)."""
    if url is None:
        return Markup("")
    return Markup(f"<!--ts-after {quote(url, safe='/')}-->")


def with_resume_points(
    render_rows: Callable[[list[Row]], Any],
    resume: Callable[[], str | None],
    every: int = EVERY,
) -> Callable[[list[Row]], Any]:
    """``render_rows`` whose 1st, (1+every)th, … batch is followed by its resume point (none
    where ``resume`` gives None: the stream's order cannot be reproduced)."""
    batches = 0

    def render(batch: list[Row]) -> Any:
        nonlocal batches
        batches += 1
        markup = render_rows(batch)
        if (batches - 1) % every:
            return markup
        # The batch was read: the last row and the count are this batch's. Markup's own + :
        # rows given as plain text are still escaped, as the template escapes them.
        return markup + comment(resume())

    return render
