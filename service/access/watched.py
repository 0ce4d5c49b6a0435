"""A grants file (tokens or policy) kept current while serving, failing closed when it breaks.

Both files are read again when they change (size, mtime and inode, looked at at most once a
second by the request that needs them) or at the next request after SIGHUP. A change that
parses replaces everything. A change that does not — unreadable, deleted, not TOML, a bad
entry, a hide naming no served column — must not keep what the operator just took away: the
usual reason to edit an access file is to remove someone. So after a failed reload only the
entries **written byte-identically in the new text** stay in force:

- an entry removed or edited in the broken edit is refused at once (a narrowed grant is not
  kept wide, a removed token does not keep reading);
- an entry the edit did not touch keeps working, so a typo in one token does not lock every
  other client out (why nginx keeps its old configuration when a reload fails);
- a deleted or unreadable file keeps nothing: every entry from it is refused;
- nothing is ever added or widened by a file that does not parse.

An entry is a TOML table: the text from its header line (``[[token]]``, ``[groups.x]``,
``[users."y"]``) to the next header. The entries kept are parsed again, on their own, by the
file's own parser, so the kept state is exactly what a file holding only them would give.
While a file is broken its ``tablestream_access_file_broken{file}`` gauge is 1 and an ERROR line
names the entries refused; ``/readyz`` stays ready, because the intact entries still serve and
a typo must not take every replica out of the load balancer at once (docs/production.md).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from .grants import GrantError

__all__ = ["WatchedFile", "entry_blocks"]

log = logging.getLogger("tablestream.access")

CHECK_EVERY_S = 1.0
_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)

S = TypeVar("S")


def entry_blocks(text: str) -> list[str]:
    """``text`` cut before each table header, each piece without trailing blank space."""
    starts = [m.start() for m in _HEADER.finditer(text)]
    return [text[a:b].rstrip() for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


class WatchedFile(Generic[S]):
    """The parsed state of ``path``; ``current()`` re-reads it first when it may have changed.

    ``parse(text, source)`` builds the state or raises GrantError; ``names(state)`` lists its
    entries for log lines; ``broken`` is the labelled gauge (``label`` is the ``file`` label).
    A file that cannot be read or parsed at start raises GrantError: start-up stops.
    """

    def __init__(
        self,
        path: str,
        label: str,
        parse: Callable[[str, str], S],
        names: Callable[[S], Iterable[str]],
        broken: Any = None,
    ) -> None:
        self.path = path
        self.label = label
        self._parse = parse
        self._names = names
        self._broken = broken.labels(label) if broken is not None else None
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._text = self._read()
        self._state = parse(self._text, path)
        self._set_broken(False)
        self._checked = time.monotonic()
        self._reload_asked = False

    def _read(self) -> str:
        try:
            return Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GrantError(f"{self.path}: cannot be read: {exc}") from None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def _set_broken(self, broken: bool) -> None:
        if self._broken is not None:
            self._broken.set(1 if broken else 0)

    def request_reload(self) -> None:
        """Read the file again before the next check (SIGHUP); safe from a signal handler."""
        self._reload_asked = True

    def current(self) -> S:
        """The state in force, after reading the file again if it may have changed."""
        now = time.monotonic()
        if self._reload_asked or now - self._checked >= CHECK_EVERY_S:
            with self._lock:
                if self._reload_asked or now - self._checked >= CHECK_EVERY_S:
                    self._refresh(now)
        return self._state

    def _refresh(self, now: float) -> None:
        forced, self._reload_asked = self._reload_asked, False
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp and not forced:
            return
        self._stamp = stamp
        text: str | None = None
        try:
            text = self._read()
            state = self._parse(text, self.path)
        except GrantError as exc:
            self._salvage(text, exc)
            return
        self._text, self._state = text, state
        self._set_broken(False)
        log.info("%s file reloaded: %d entries", self.label, len(list(self._names(state))))

    def _salvage(self, text: str | None, exc: GrantError) -> None:
        """Keep only the entries in force whose text is unchanged in ``text`` (None: none)."""
        before = list(self._names(self._state))
        present = set(entry_blocks(text)) if text is not None else set()
        kept = "\n\n".join(b for b in entry_blocks(self._text) if b in present)
        try:
            state = self._parse(kept, f"{self.path} (its unchanged entries)")
        except GrantError:  # cannot happen for blocks of a file that parsed; fail closed
            kept, state = "", self._parse("", self.path)
        self._text, self._state = kept, state
        self._set_broken(True)
        after = set(self._names(state))
        refused = [name for name in before if name not in after]
        log.error(
            "%s file not fully reloaded: kept %d unchanged entries (%s), refused the changed "
            "or removed: %s; nothing it adds or widens is taken until it reads whole: %s",
            self.label,
            len(after),
            ", ".join(sorted(after)) or "none",
            ", ".join(refused) or "none",
            exc,
        )
