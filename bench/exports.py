"""The text formats against the database engines' own exports of the same rows (issue 30).

A user who wants a table as CSV could ask the engine: ``sqlite3 -csv`` or ``psql -c "\\copy
(select …) to stdout with csv header"``. Those are the speed limit for the service's CSV, so
phase G judges the service's CSV against them, measured in the same run, pair by pair: in each
repeat the service's CSV of a table (curl to /dev/null), the engine's export of the same rows
(the same SQL, read from the tool's stdout through a pipe), and the service's NDJSON of the
table (a figure: no engine writes it). The ratio of a pair is the engine's time over the
service's — the service's share of the engine's rows/s — and a verdict is on the median of
the pairs, so a neighbour's load that slows one run moves both sides of its pair.

Targets: SQLite CSV >= 0.45x ``sqlite3 -csv``; PostgreSQL CSV >= 0.8x ``psql \\copy`` (its CSV
comes from the backend's own ``COPY``, ``service/sources/pgcopy.py``, so it should be close to a
pass-through). ``sqlite3`` and ``psql`` are installed by ``tests/system/install-deps.sh``
(``make bench`` runs it); without one, its verdict says so and fails.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINES",
    "Exports",
    "engine_command",
    "figure_lines",
    "measure_exports",
    "report_lines",
    "run_engine",
    "verdicts",
]

ENGINES = {  # table: (tool, target, what the target compares)
    "orders": ("sqlite3", 0.45, "sqlite3 -csv to a pipe"),
    "pg_orders": ("psql", 0.8, 'psql -c "\\copy (select …) to stdout with csv header" to a pipe'),
}


@dataclass
class Exports:
    rows: int
    # table -> per repeat: (engine seconds, service CSV run, service NDJSON run)
    pairs: dict[str, list[tuple[float, Any, Any]]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # table -> why its engine did not run

    def ratios(self, table: str, fmt: str) -> list[float]:
        """Per pair: the service's rows/s in ``fmt`` over the engine's CSV rows/s."""
        at = 1 if fmt == "csv" else 2
        return [pair[at].rows_per_s * pair[0] / self.rows for pair in self.pairs.get(table, [])]

    def engine_rate(self, table: str) -> float:
        return statistics.median(self.rows / s for s, _, _ in self.pairs[table])

    def rate(self, table: str, fmt: str) -> float:
        at = 1 if fmt == "csv" else 2
        return statistics.median(pair[at].rows_per_s for pair in self.pairs[table])


def engine_command(table: str, rows: int, sqlite_db: Path, pg_dsn: str, pg_table: str) -> list[str]:
    """The engine's own CSV export of the rows ``/tables/<table>?limit=rows`` streams: the same
    SQL (SQLite ``orders`` has a key, so a page of it is ordered by it; the PostgreSQL view has
    none and is read as it lies)."""
    if table == "orders":
        query = f"SELECT * FROM orders ORDER BY id LIMIT {rows}"
        return ["sqlite3", "-csv", "-header", str(sqlite_db), query]
    query = f"select * from {pg_table} limit {rows}"
    return ["psql", pg_dsn, "-X", "-c", f"\\copy ({query}) to stdout with csv header"]


def run_engine(command: list[str]) -> tuple[float, int]:
    """Seconds until the tool's stdout closed, read through a pipe; and the bytes read."""
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        total = 0
        while block := proc.stdout.read1(1 << 20):
            total += len(block)
        seconds = time.perf_counter() - start
        err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {err.decode()[:300]}")
    return seconds, total


def measure_exports(
    result: Exports,
    tables: list[str],
    url: Callable[[str, str], str],
    command: Callable[[str], list[str]],
    measure: Callable[[str], Any],
) -> None:
    """One repeat: for each table with an engine, its CSV, the engine's export, its NDJSON."""
    for table in tables:
        if table not in ENGINES:
            continue
        tool = ENGINES[table][0]
        if shutil.which(tool) is None:
            result.missing[table] = f"{tool} is not installed (tests/system/install-deps.sh)"
            continue
        ours = measure(url(table, "csv"))
        seconds, _ = run_engine(command(table))
        ndjson = measure(url(table, "ndjson"))
        result.pairs.setdefault(table, []).append((seconds, ours, ndjson))
        print(
            f"  export {table:9s} service CSV {ours.rows_per_s:,.0f}, {tool} "
            f"{result.rows / seconds:,.0f}, service NDJSON {ndjson.rows_per_s:,.0f} rows/s",
            flush=True,
        )


def verdicts(result: Exports, tables: list[str]) -> list[tuple[bool, str]]:
    lines = []
    for table in tables:
        if table not in ENGINES:
            continue
        _, target, what = ENGINES[table]
        if table in result.missing:
            lines.append((False, f"{table} CSV vs {what}: not measured, {result.missing[table]}"))
            continue
        ratios = result.ratios(table, "csv")
        ratio = statistics.median(ratios)
        lines.append(
            (
                ratio >= target,
                f"{table} CSV vs {what}, same rows, rows/s: {ratio:.2f}x "
                f"({result.rate(table, 'csv'):,.0f} vs {result.engine_rate(table):,.0f}; "
                f"target >= {target}x, median of pairwise ratios "
                + ", ".join(f"{r:.2f}" for r in ratios)
                + ")",
            )
        )
    return lines


def figure_lines(result: Exports) -> list[str]:
    """NDJSON, judged by nothing: the service's NDJSON beside the engine's CSV of the rows."""
    return [
        f"figure: {table} NDJSON {result.rate(table, 'ndjson'):,.0f} rows/s, "
        f"{statistics.median(result.ratios(table, 'ndjson')):.2f}x {ENGINES[table][0]}'s CSV "
        "(median of pairwise ratios; no target)"
        for table in result.pairs
    ]


def report_lines(result: Exports) -> list[str]:
    """The section of BENCHMARKS.md."""
    lines = [
        "## Text formats against the engines' own exports",
        "",
        f"{result.rows:,} rows; in each run the service's CSV, the engine's CSV export of the "
        "same rows (read from the tool's stdout through a pipe) and the service's NDJSON, back "
        "to back (`bench/exports.py`). Ratios are the service's rows/s over the engine's, pair "
        "by pair; medians.",
        "",
        "| table | engine export | engine rows/s | service CSV rows/s | CSV vs engine | target "
        "| service NDJSON rows/s | NDJSON vs engine CSV |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for table in result.pairs:
        tool, target, _ = ENGINES[table]
        lines.append(
            f"| {table} | {tool} | {result.engine_rate(table):,.0f} "
            f"| {result.rate(table, 'csv'):,.0f} "
            f"| {statistics.median(result.ratios(table, 'csv')):.2f}x | >= {target}x "
            f"| {result.rate(table, 'ndjson'):,.0f} "
            f"| {statistics.median(result.ratios(table, 'ndjson')):.2f}x |"
        )
    for table, why in result.missing.items():
        lines.append(f"| {table} | not measured: {why} | | | | | | |")
    return [*lines, ""]
