"""What one app instance holds while it serves: settings, the table catalogue, the observers.

Stored in ``app.extensions["tablestream"]`` so that several apps (tests build many) never share
state through module globals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .access import Access
from .config import Settings
from .observe.metrics import Metrics
from .observe.status import RecentStreams
from .query.keyset import Keysets
from .server.admission import Admission
from .server.door import Door
from .server.watchdog import Watchdog
from .sources import SourceError, Table
from .sources.counts import RowCounts
from .stream.body import FanOut, NullObserver, StreamObserver

__all__ = ["READINESS_CACHE_SECONDS", "Runtime"]

READINESS_CACHE_SECONDS = 1.5
"""How long one /readyz verdict is reused: probes every second stay one read per table."""


@dataclass
class Runtime:
    settings: Settings
    catalog: dict[str, Table]
    metrics: Metrics
    watchdog: Watchdog
    admission: Admission
    access: Access
    keysets: Keysets  # signs and opens the "next rows" links' _after tokens
    # The stream 503 answered in the server's loop thread (server/door.py); None: views only.
    door: Door | None = None
    # Each factory is called once per stream, inside the request, with the table name; what
    # it returns is told about every chunk and the outcome. Metrics and logs register here.
    observer_factories: list[Callable[[str], StreamObserver]] = field(default_factory=list)
    recent: RecentStreams = field(default_factory=RecentStreams)
    counts: RowCounts = field(default_factory=RowCounts)
    _readiness: tuple[float, list[str]] | None = field(default=None, repr=False)
    _readiness_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe_tables(self) -> list[dict[str, Any]]:
        """Name, kind, columns and row count (``counts``: None when unknown) of every table.

        A table that cannot be read is listed with ``broken`` saying why, so the page still
        shows every other table (a view over a dropped table made the whole page a 500).
        """
        described = []
        for table in self.catalog.values():
            entry: dict[str, Any] = {"name": table.name, "kind": table.kind, "broken": None}
            try:
                entry.update(columns=table.columns(), rows=self.counts.of(table))
            except SourceError as exc:
                entry.update(columns=[], rows=None, broken=str(exc))
            described.append(entry)
        return described

    def observer(self, table: str, *more: StreamObserver | None) -> StreamObserver:
        """Every registered observer of a stream of ``table``, plus ``more`` (None skipped)."""
        observers = [factory(table) for factory in self.observer_factories]
        observers.extend(o for o in more if o is not None)
        if not observers:
            return NullObserver()
        return observers[0] if len(observers) == 1 else FanOut(observers)

    def problems(self) -> list[str]:
        """Why the service cannot serve every table now; empty when ready.

        Every table is opened and its first row read, at most once per
        ``READINESS_CACHE_SECONDS``: concurrent probes wait for the one check under way.
        """
        with self._readiness_lock:
            now = time.monotonic()
            if self._readiness is not None and now - self._readiness[0] < READINESS_CACHE_SECONDS:
                return list(self._readiness[1])
            problems = []
            for table in self.catalog.values():
                try:
                    table.check()
                except SourceError as exc:
                    problems.append(f"{table.name}: {exc}")
            self._readiness = (time.monotonic(), problems)
            return list(problems)
