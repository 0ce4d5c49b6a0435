"""What one app instance holds while it serves: settings, the table catalogue, the observers.

Stored in ``app.extensions["tablestream"]`` so that several apps (tests build many) never share
state through module globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .admission import Admission
from .config import Settings
from .metrics import Metrics
from .sources import SourceError, Table
from .streaming import FanOut, NullObserver, StreamObserver
from .streamstatus import RecentStreams
from .watchdog import Watchdog

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    catalog: dict[str, Table]
    metrics: Metrics
    watchdog: Watchdog
    admission: Admission
    # Each factory is called once per stream, inside the request, with the table name; what
    # it returns is told about every chunk and the outcome. Metrics and logs register here.
    observer_factories: list[Callable[[str], StreamObserver]] = field(default_factory=list)
    recent: RecentStreams = field(default_factory=RecentStreams)

    def describe_tables(self) -> list[dict[str, Any]]:
        """Name, kind, columns and (where cheap) row count of every table, for the index page."""
        described = []
        for table in self.catalog.values():
            try:
                columns, count = table.columns(), table.row_count()
            except SourceError:
                columns, count = [], None
            described.append(
                {"name": table.name, "kind": table.kind, "columns": columns, "rows": count}
            )
        return described

    def observer(self, table: str, *more: StreamObserver | None) -> StreamObserver:
        """Every registered observer of a stream of ``table``, plus ``more`` (None skipped)."""
        observers = [factory(table) for factory in self.observer_factories]
        observers.extend(o for o in more if o is not None)
        if not observers:
            return NullObserver()
        return observers[0] if len(observers) == 1 else FanOut(observers)

    def problems(self) -> list[str]:
        """Why the service cannot serve every table now; empty when ready."""
        problems = []
        for table in self.catalog.values():
            try:
                table.check()
            except SourceError as exc:
                problems.append(f"{table.name}: {exc}")
        return problems
