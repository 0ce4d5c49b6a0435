"""Is the SQLite file a stream reads still the file it started reading?

A stream reads one snapshot: one read transaction, held until the stream closes. SQLite's
locks keep its own writers out of that snapshot, but not a program that rewrites the file
without SQLite (``cp new.db live.db``, ``open(path, "wb")``): SQLite then reads some pages
from the old database and some from the new one, and no error need follow (measured: ids ran
backwards, the page ended with the success footer). So each stream keeps its own descriptor on
the file SQLite opened and compares the file's fingerprint after every fetch, before any of
the fetched rows are handed on: one ``fstat`` and one 100-byte ``pread`` per fetch of
``TABLESTREAM_FETCH_ROWS`` rows.

What the fingerprint holds depends on the journal mode (header bytes 18-19):

* rollback journal (the default): nothing may write the database file while a reader holds its
  shared lock, so size, modification time and the 100-byte header must stay exactly as they
  were. The header's change counter alone is not enough (two builds of the demo database both
  have counter 3), and mtime alone is not either (``cp -p`` restores it).
* WAL: checkpoints legitimately copy pages of the reader's own snapshot into the file while it
  reads, so mtime and header change; the check is that the page size and format stay and the
  file does not shrink below the snapshot's pages. An overwrite that keeps those is not caught:
  a WAL database must only be replaced by renaming a new file over it (docs/data-integrity.md).

A new file renamed over the path is a different inode: this stream's descriptors still read
the old one, so it finishes consistently from it, and the next request opens the new file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SQLITE_MAGIC", "FileWatch", "not_a_database"]

SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL = 2


def not_a_database(path: Path) -> str | None:
    """Why ``path`` is not a SQLite database file (one line), or None when it looks like one.

    A 0-byte file would otherwise open as an empty database with no tables (SQLite creates the
    header on the first write); the service would start serving nothing and call itself ready.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if size == 0:
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            return None  # a WAL database not yet checkpointed: its pages are in the -wal file
        return "is an empty file (0 bytes)"
    if head != SQLITE_MAGIC:
        return f"is not a SQLite database (it starts with {head[:16]!r}, not 'SQLite format 3')"
    return None


class FileWatch:
    """A descriptor on the database file, and what it looked like when the snapshot began."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._start: tuple | None = None
        self._wal_floor = 0

    def _fingerprint(self) -> tuple:
        assert self._fd is not None
        st = os.fstat(self._fd)
        header = os.pread(self._fd, 100, 0)
        if len(header) == 100 and header[18] == _WAL and header[19] == _WAL:
            return ("wal", header[16:20], st.st_size)
        return ("rollback", header, st.st_size, st.st_mtime_ns)

    def begin(self) -> None:
        """Remember the file as it is now (call before the read transaction takes its lock)."""
        self._start = self._fingerprint()

    def set_wal_floor(self, page_count: int) -> None:
        """In WAL mode: the snapshot's size in pages; the file never legitimately gets smaller."""
        self._wal_floor = page_count

    def is_the_path(self) -> bool:
        """Whether the path still names the file this watch (and SQLite) opened."""
        assert self._fd is not None
        try:
            named = os.stat(self.path)
        except OSError:
            return False
        opened = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    @property
    def is_wal(self) -> bool:
        return self._start is not None and self._start[0] == "wal"

    def changed(self) -> str | None:
        """Why the file is not the one the snapshot began on, or None while it still is."""
        start, now = self._start, self._fingerprint()
        if start is None or now == start:
            return None
        if start[0] != now[0]:
            return "its journal mode changed (the file was rewritten)"
        if start[0] == "rollback":
            seen = [f"size {start[2]} -> {now[2]} bytes"] if now[2] != start[2] else []
            seen += ["modification time"] if now[3] != start[3] else []
            seen += ["SQLite header"] if now[1] != start[1] else []
            return f"it was written to outside SQLite ({', '.join(seen)} changed)"
        page_size = int.from_bytes(now[1][:2], "big")
        page_size = 65536 if page_size == 1 else page_size
        if now[1] != start[1]:
            return "its page size or format changed (the file was rewritten)"
        if now[2] < self._wal_floor * page_size:
            return f"it shrank below the snapshot ({now[2]} bytes) (the file was rewritten)"
        return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
