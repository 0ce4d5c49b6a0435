"""Count a streamed table page as it arrives, and say whether it really was complete.

locust reports ``response_length`` from Content-Length, which a chunked page does not have, and
a streamed read that the server cuts just stops. So the readers count bytes and rows here, and
a page counts as complete only when its success footer is there and both the footer and the
counted rows equal the rows asked for. No joining: only the last few hundred bytes are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PageCount"]

# Every row is one <tr> element, whatever its markup (the default's <tr><td>, or a table's own
# row template: <tr class=...>); the header row is one more, written "<thead><tr". Cells are
# escaped, so no cell text holds "<tr".
ROW_START = b"<tr"
HEADER_START = b"<thead><tr"
_TAIL_BYTES = 512
_FOOTER = re.compile(rb'<footer class="ts-footer" id="ts-complete" data-rows-sent="(\d+)"')


@dataclass
class PageCount:
    """Bytes and rows seen so far in one streamed page."""

    bytes: int = 0
    row_starts: int = 0  # the header row's included
    header_starts: int = 0
    tail: bytes = b""

    @property
    def rows(self) -> int:
        """Body rows seen so far."""
        return self.row_starts - self.header_starts

    def feed(self, chunk: bytes) -> None:
        # Search the previous tail plus the chunk, so a row start split across two chunks is
        # counted once: the carried part is shorter than the pattern, so it holds no whole match.
        self.row_starts += (self.tail[-(len(ROW_START) - 1) :] + chunk).count(ROW_START)
        self.header_starts += (self.tail[-(len(HEADER_START) - 1) :] + chunk).count(HEADER_START)
        self.bytes += len(chunk)
        self.tail = (self.tail + chunk)[-_TAIL_BYTES:]

    def rows_sent(self) -> int | None:
        """The row count the server's success footer claims, or None without a footer."""
        found = _FOOTER.search(self.tail)
        return int(found.group(1)) if found else None

    def problem(self, expected_rows: int, exact: bool = True) -> str | None:
        """Why this page is not a complete page of ``expected_rows`` rows, or None if it is.

        ``exact=False`` accepts fewer rows (a ``limit`` past the end of a table whose size the
        client does not know), as long as the footer and the rows counted agree.
        """
        sent = self.rows_sent()
        if sent is None:
            return f"no success footer after {self.rows} rows, {self.bytes} bytes (stream cut?)"
        if sent != expected_rows if exact else sent > expected_rows:
            return f"footer says {sent} rows, asked for {expected_rows}"
        if self.rows != sent:
            return f"counted {self.rows} rows, footer says {sent}"
        return None
