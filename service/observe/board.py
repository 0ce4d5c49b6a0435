"""What every ``--processes`` sibling can read: recent streams' outcomes and their pages' reports.

A table page asks ``GET /streams/<request id>`` for its stream's outcome and reports how far its
parser got (``?parsed=N``, stream/pacing.py). Behind ``--processes`` each new connection goes to
whichever child accepts it first, so the ask can reach a sibling of the process that serves the
stream, again and again: in 1 of 6 runs of a test, all 30 asks for one stream, each on a new
connection, were accepted by the one process that had not served it. Nothing routes a
connection to a chosen process, so each process leaves what its siblings may be asked in a
directory they share (``TABLESTREAM_SHARED_DIR``, made by the parent, removed at its end):

- ``<key>.json``: a stream's table, outcome, rows sent, owner and process id, written when the
  stream starts and when it ends, each time whole (a reader sees the old record or the new);
- ``<key>.parsed``: the last report of its page that a sibling received; the serving process's
  pacer looks for a new one every ``POLL_S`` while its page reports.

``key`` is a hash of the stream's owner (the caller, with access control on) and request id,
so client-chosen text never becomes a path, and a caller that sends another's request id posts
beside the other's record, never over it (issue 28); ``owner`` is still checked on every read.
A process removes its records when it forgets the stream (after its last ``capacity``
streams); the parent removes those of a child that ended. Records are a few hundred bytes, two
writes a stream, and only with ``--processes``; a failed write (a full disk) is logged and costs
only the siblings' view, never the stream. Instances behind a balancer share the same records
in Redis instead (shared/board.py, the same ``Shelf``), this board kept as its fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["POLL_S", "Board", "Shelf", "board_key"]

log = logging.getLogger("tablestream")

POLL_S = 0.1
"""Seconds between a waiting pacer's looks for a report its siblings received."""

IN_PROGRESS = "in_progress"  # observe/status.py's outcome of a stream still running


def board_key(request_id: str, owner: str | None) -> str:
    """The name of ``owner``'s ``request_id`` on a board: a hash, never the client's text."""
    # The owner and the id as one JSON array: no two pairs give the same text.
    named = json.dumps([owner, request_id]).encode("utf-8", "surrogatepass")
    return hashlib.sha256(named).hexdigest()[:32]


class Shelf(Protocol):
    """What a board does, in a shared directory (``Board``) or in Redis (shared/board.py)."""

    def post(self, request_id: str, record: dict[str, Any]) -> None: ...
    def find(self, request_id: str, owner: str | None = None) -> dict[str, Any] | None: ...
    def remove(self, request_id: str, owner: str | None = None) -> None: ...
    def report(self, request_id: str, owner: str | None, parsed: int) -> bool: ...
    def reports(self, request_id: str, owner: str | None = None) -> Callable[[], int | None]: ...


class Board:
    """The shared directory ``path`` as seen by the process ``pid`` (this one by default)."""

    def __init__(self, path: str | os.PathLike[str], pid: int | None = None) -> None:
        self._dir = Path(path)
        self._pid = os.getpid() if pid is None else pid

    def post(self, request_id: str, record: dict[str, Any]) -> None:
        """Show ``record`` (table, outcome, rows_sent, owner) of this process's stream."""
        self._write(
            self._path(request_id, record["owner"], ".json"),
            {**record, "request_id": request_id, "pid": self._pid},
        )

    def find(self, request_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The last record posted for ``owner``'s ``request_id`` by any process (``pid`` says
        which)."""
        found = self._read(self._path(request_id, owner, ".json"))
        if found is None or found.get("request_id") != request_id or found.get("owner") != owner:
            return None
        return found

    def remove(self, request_id: str, owner: str | None = None) -> None:
        """Take down this process's record of ``owner``'s ``request_id`` (a sibling's later one
        stays)."""
        found = self.find(request_id, owner)
        if found is not None and found.get("pid") == self._pid:
            self._path(request_id, owner, ".json").unlink(missing_ok=True)
            self._path(request_id, owner, ".parsed").unlink(missing_ok=True)

    def report(self, request_id: str, owner: str | None, parsed: int) -> bool:
        """Pass a page's report on to the sibling serving its stream; False if none does (or
        the stream is this process's, or another caller's, or over)."""
        found = self.find(request_id, owner)
        if found is None or found.get("pid") == self._pid or found.get("outcome") != IN_PROGRESS:
            return False
        self._write(
            self._path(request_id, owner, ".parsed"), {"request_id": request_id, "parsed": parsed}
        )
        return True

    def reports(self, request_id: str, owner: str | None = None) -> Callable[[], int | None]:
        """A poll for reports of ``owner``'s ``request_id`` received by siblings: each call gives
        the parsed count of a report not seen before, else None (one ``stat`` when nothing
        new)."""
        path = self._path(request_id, owner, ".parsed")
        seen: list[tuple[int, int] | None] = [None]

        def poll() -> int | None:
            try:
                st = path.stat()
            except OSError:
                return None
            stamp = (st.st_ino, st.st_mtime_ns)  # each report is a new file: a new inode
            if stamp == seen[0]:
                return None
            seen[0] = stamp
            found = self._read(path)
            if found is None or found.get("request_id") != request_id:
                return None
            parsed = found.get("parsed")
            return parsed if isinstance(parsed, int) else None

        return poll

    @staticmethod
    def forget_process(path: str | os.PathLike[str], pid: int) -> int:
        """Remove every record of the ended process ``pid``; how many there were."""
        removed = 0
        for record in Path(path).glob("*.json"):
            found = Board._read(record)
            if found is not None and found.get("pid") == pid:
                record.unlink(missing_ok=True)
                record.with_suffix(".parsed").unlink(missing_ok=True)
                removed += 1
        return removed

    def _path(self, request_id: str, owner: str | None, suffix: str) -> Path:
        return self._dir / f"{board_key(request_id, owner)}{suffix}"

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        # Written aside and renamed over: a reader never sees half a record.
        aside = path.with_name(f".{path.name}.{self._pid}.{threading.get_ident()}")
        try:
            aside.write_text(json.dumps(data), encoding="utf-8")
            os.replace(aside, path)
        except OSError as exc:
            log.warning("could not write %s for the sibling processes: %s", path, exc)
            with contextlib.suppress(OSError):
                aside.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None
