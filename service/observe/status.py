"""What became of a recent stream, for the page that cannot see it end.

When a chunked body is cut, Chromium stops its HTML parser, drops what it had not parsed yet (the
server's error marker with it) and leaves the document "loading" with no event, so the page's
script cannot tell a failed stream from a slow one. It can ask: every table page carries its
request id, and ``GET /streams/<request id>`` answers with the stream's outcome and row count.

Kept in memory, per process, for the last ``capacity`` streams (a few hundred bytes each), and
only for outcomes and counts, never data. With several processes behind one port the question
may reach a process that did not serve the stream, and behind a balancer another instance: each
record is also posted on the board they share (``board.py``; Redis, ``shared/board.py``), where
that process finds it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..stream.body import StreamObserver
from .board import IN_PROGRESS, Shelf

__all__ = ["IN_PROGRESS", "RecentStreams"]


class _Recorder:
    def __init__(self, recent: RecentStreams, key: tuple[str | None, str]) -> None:
        self._recent = recent
        self.key = key

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        pass

    def finished(self, outcome: str, rows_read: int) -> None:
        self._recent._update(self, outcome, rows_read)


class RecentStreams:
    """A bounded map from (owner, request id) to ``{table, outcome, rows_sent}``; also on
    ``board`` (the ``--processes`` siblings' shared one) when there is one.

    Keyed by the owner too (issue 28): a caller that sends another's ``X-Request-ID`` (only
    possible through a proxy that passes clients' ids on) starts a record of its own beside the
    other's, never in its place, and its stream's end is written only into its own record."""

    def __init__(self, capacity: int = 1024, board: Shelf | None = None) -> None:
        self._capacity = capacity
        self.board = board
        self._lock = threading.Lock()
        self._streams: OrderedDict[tuple[str | None, str], dict[str, Any]] = OrderedDict()
        self._recorders: dict[tuple[str | None, str], _Recorder] = {}

    def observer(self, table: str, request_id: str, owner: str | None = None) -> StreamObserver:
        """Record a new stream; ``owner`` (the caller, with access control on) alone may ask."""
        key = (owner, request_id)
        record = {"table": table, "outcome": IN_PROGRESS, "rows_sent": 0, "owner": owner}
        recorder = _Recorder(self, key)
        forgotten = []
        with self._lock:
            self._streams[key] = record
            self._streams.move_to_end(key)
            self._recorders[key] = recorder  # the newest stream under a key writes its record
            while len(self._streams) > self._capacity:
                old = self._streams.popitem(last=False)[0]
                self._recorders.pop(old, None)
                forgotten.append(old)
        if self.board is not None:
            self.board.post(request_id, record)
            for old_owner, old_id in forgotten:
                self.board.remove(old_id, old_owner)
        return recorder

    def get(self, request_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The stream's table, outcome and rows sent, if it is recent and ``owner``'s."""
        with self._lock:
            found = self._streams.get((owner, request_id))
            if found is not None:
                found = dict(found)
        if found is None and self.board is not None:
            found = self.board.find(request_id, owner)  # a sibling's stream
        if found is None or found.get("owner") != owner:
            return None
        return {k: found[k] for k in ("table", "outcome", "rows_sent")}

    def _update(self, recorder: _Recorder, outcome: str, rows_read: int) -> None:
        key = recorder.key
        with self._lock:
            found = self._streams.get(key)
            if found is None or self._recorders.get(key) is not recorder:
                return  # forgotten, or a newer stream of the same caller took the id
            found.update(outcome=outcome, rows_sent=rows_read)
            record = dict(found)
        if self.board is not None:
            self.board.post(key[1], record)
