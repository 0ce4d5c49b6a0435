"""A page's stream kept at most a window of rows ahead of what the reader's browser has parsed.

Chromium reads a page's body as fast as the network gives it and keeps what its HTML parser has
not reached yet: the service sends ~270k synthetic rows/s, the parser takes ~60k/s, so a
10M-row page had ~1 GB of unparsed HTML waiting in the renderer (docs/browser-page.md). TCP
cannot push back, because the browser always reads. So the page's script says how far it has
parsed (``GET /streams/<request id>?parsed=N``, the status URL the page already asks) and the
stream hands a batch of rows to the template only while it is at most ``budget`` rows ahead.

Chromium also keeps every byte of a document it has received until the document has loaded,
whatever the page removes, so past the page's window (``TABLESTREAM_PAGE_ROWS``) a page whose
script reports gets each batch as its count instead of its rows (``Paced.compactor``); the
script fetches rows back by range (``fragments.py``) when the reader goes there.

Behind ``--processes`` a report can reach a sibling of the process serving the stream, and
behind a balancer another instance; it is left on the board they share (observe/board.py, or
Redis: shared/board.py), where the stream's pacer looks for it every ``POLL_S`` seconds.

Only a page that reports is paced, and only while it reports: without scripts, or when reports
stop for ``PATIENCE`` seconds (a closed tab), the stream runs free again, as before. A wait
never holds the watchdog's attention: no bytes are pending for the client while it waits. Only
the stream's own caller may report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from markupsafe import Markup

from ..observe.board import POLL_S, Shelf
from ..sources.base import Row, RowStream, WrappedRows

__all__ = ["FLUSH_EVERY", "PATIENCE", "Paced", "Pacers"]

RenderRows = Callable[[list[Row]], Any]

FLUSH_EVERY = 0.25
"""Seconds between flushes of the chunker while only counts come, so the counter moves."""

PATIENCE = 2.0
"""Seconds without a report after which a waiting stream goes on unpaced."""


class _Pacer:
    def __init__(
        self,
        budget: int,
        stuck: float,
        siblings: Callable[[], int | None] | None = None,
    ) -> None:
        self.budget = budget
        self.stuck = stuck
        self._siblings = siblings  # reports the --processes siblings received (Board.reports)
        self._looked = 0.0
        self._cond = threading.Condition()
        self._parsed: int | None = None  # None: the page never reported (no script): no pacing
        self._heard = 0.0
        self._moved = 0.0  # when the reported parser last got further

    @property
    def reporting(self) -> bool:
        """Whether the page's script has reported: it runs and releases rows."""
        self.look()
        return self._parsed is not None

    def heard(self, parsed: int) -> None:
        with self._cond:
            now = time.monotonic()
            if self._parsed is None or parsed > self._parsed:
                self._parsed, self._moved = parsed, now
            self._heard = now
            self._cond.notify_all()

    def look(self) -> None:
        """Take a report a sibling received, looking at most every ``POLL_S`` seconds."""
        if self._siblings is None or (now := time.monotonic()) - self._looked < POLL_S:
            return
        self._looked = now
        parsed = self._siblings()
        if parsed is not None:
            self.heard(parsed)

    def wait(self, sent: int) -> None:
        self.look()
        with self._cond:
            while self._parsed is not None and sent - self._parsed > self.budget:
                # Reports that stop, or a parser that stays put for ``stuck`` seconds while the
                # stream waits for it (a client reporting without reading would otherwise
                # hold its stream slot for ever): the stream goes on unpaced, and the watchdog
                # judges the client by what it reads.
                until = min(self._heard + PATIENCE, self._moved + self.stuck)
                left = until - time.monotonic()
                if left <= 0:
                    return
                if self._siblings is None:
                    self._cond.wait(left)
                else:
                    self._cond.wait(min(left, POLL_S))
                    self.look()  # the condition's lock is reentrant


class Pacers:
    """The pacers of this process's paced streams, by owner and request id; one per stream,
    while it runs (a caller reusing another's request id gets a pacer of its own, issue 28).

    ``stuck``: seconds a stream waits for a parser that does not move before it goes on
    unpaced (the app gives ``TABLESTREAM_WRITE_TIMEOUT``, the same patience as for a client
    that does not read)."""

    def __init__(self, stuck: float = 60.0, board: Shelf | None = None) -> None:
        self._stuck = stuck
        self._board = board
        self._lock = threading.Lock()
        self._by_id: dict[tuple[str | None, str], _Pacer] = {}

    def heard(self, request_id: str, owner: str | None, parsed: int) -> bool:
        """The page of ``request_id`` has parsed ``parsed`` rows; False if no such paced stream
        of this caller runs here or (passed on by the board) in a sibling."""
        with self._lock:
            pacer = self._by_id.get((owner, request_id))
        if pacer is None:
            return self._board is not None and self._board.report(request_id, owner, parsed)
        pacer.heard(parsed)
        return True

    def pace(self, rows: RowStream, request_id: str, owner: str | None, budget: int) -> RowStream:
        """``rows``, handed on a batch at a time while at most ``budget`` rows ahead."""
        if not request_id or budget <= 0:
            return rows
        siblings = self._board.reports(request_id, owner) if self._board is not None else None
        pacer = _Pacer(budget, self._stuck, siblings)
        key = (owner, request_id)
        with self._lock:
            self._by_id[key] = pacer
        return Paced(rows, pacer, lambda: self._forget(key, pacer))

    def _forget(self, key: tuple[str | None, str], pacer: _Pacer) -> None:
        with self._lock:
            if self._by_id.get(key) is pacer:
                del self._by_id[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


class Paced(WrappedRows):
    """A RowStream whose batches wait for the reader's parser; forgotten when closed."""

    def __init__(self, inner: RowStream, pacer: _Pacer, forget: Callable[[], None]) -> None:
        super().__init__(inner)
        self._pacer = pacer
        self._forget = forget
        self._keep = 1 << 62  # every batch is rows until compactor() says where counts start

    def batches(self) -> Iterator[list[Row]]:
        inner, pacer = self._inner, self._pacer
        for batch in inner.batches():
            if not (pacer.reporting and inner.rows_read - len(batch) >= self._keep):
                pacer.wait(inner.rows_read)  # rows, not counts (compactor)
            yield batch

    def compactor(self, keep: int) -> Callable[[RenderRows, Callable[[], str]], RenderRows]:
        """Wrap a row renderer so that, once the page's script reports, a batch past the first
        ``keep`` rows goes out as its count only, ``<!--ts-rows N-->``.

        The script would release such rows at once, and fetches them back by range when the
        reader goes there; sent whole, they would still cost the reader their bytes: Chromium
        keeps every byte of a document it has received until the document has loaded (a
        10M-row page: ~1.3 GB, measured in docs/browser-page.md), whatever the page removes.
        The source still reads every row (the count and the footer are the source's). Without
        scripts (no report) the rows are elements, as before.

        Counts are not paced (they cost the reader nothing). A chunk of counts would take
        ~1,500 batches to fill, so every ``FLUSH_EVERY`` seconds a count asks the chunker to send
        what it has (``flush``, the page head's way out), and the page's counter moves as the
        source reads: a short chunk, never padding that the reader would keep.
        """
        pacer, rows = self._pacer, self._inner
        self._keep = keep
        flushed = [time.monotonic()]

        def wrap(render_rows: RenderRows, flush: Callable[[], str]) -> RenderRows:
            def render(batch: list[Row]) -> Any:
                if not (pacer.reporting and rows.rows_read - len(batch) >= keep):
                    return render_rows(batch)
                now = time.monotonic()
                if now - flushed[0] >= FLUSH_EVERY:
                    flushed[0] = now
                    flush()
                return Markup(f"<!--ts-rows {len(batch)}-->")

            return render

        return wrap

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._forget()
