"""``make bench`` / ``make bench-quick``: measure every way side by side, judge, write the report.

Phases, each on fresh server processes so one variant's memory never shows up in another's:
  A. per row count, one bench server: the service's stream, the hand-built stream, the ceiling
     and the classic buffered stream interleaved run by run (so ratios are taken pair by pair,
     on the same machine state), then ``render_template`` last (it keeps its memory);
  B. one long stream of the service alone (10M rows; 1M in quick mode): RSS before/peak/after;
  C. 20 concurrent streams against one process (20 stream slots): peak RSS above idle;
  D. the same closed-loop load on 1 and on 2 processes (``--processes``), alternated run by run:
     aggregate rows/s and the server cores used;
  E. one stream per ``TABLESTREAM_CHUNK_BYTES`` value, each on a fresh server: rows/s and peak
     RSS by chunk size;
  F. row templates (``bench/rowtemplates.py``): a table's compiled row template against the
     default three-string path and against the same markup written by hand, the default path
     against the code before row templates, and a row template's memory.
  G. the real sources (SQLite ``orders``, the same orders in PostgreSQL when it answers) beside
     the synthetic table, HTML/CSV/NDJSON, plain, gzip and the pre-issue-17 way
     (``bench/sources.py``; ``--sources-only`` runs this phase alone).
Prints one verdict line per target and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tablestream.testing import ServerProcess

from . import rowtemplates
from .measure import fetch, fetch_many, steady_load, wire_bytes
from .report import write_report
from .sources import SourcesResult, phase_f, report_lines, source_figures, source_verdicts
from .steps import measure_steps

MIB = 1024 * 1024
VARIANTS = ["service", "service_gzip", "hand", "ceiling", "buffered5", "render_template"]
BUFFERED_SECONDS = 240
"""How long one fetch of the classic ``enable_buffering(5)`` page may run. Its groups of five
template items are each an HTTP chunk of ~60 bytes; once more than waitress's ``send_bytes``
(18,000) wait unsent, every write makes the worker copy up to a socket buffer's worth of them
(``outbuf.get(sendbuf_len)``) and try to send it, and with the socket full that is a large copy
per tiny write: a 1M-row page ran past curl's 15 minutes on a loaded machine (20,000 rows took
25.7 s where 2,000 took 0.19). Stopped here, its rows/s is what it sent by then: an upper bound
on its speed, so the service's ratio to it a lower bound."""


@dataclass
class Run:
    rows_per_s: float
    mb_per_s: float
    ttfb: float
    cpu: float
    peak: int
    after: int
    size: int
    cut_off: bool = False  # stopped at BUFFERED_SECONDS; rows/s from the bytes it had sent


@dataclass
class Cell:
    variant: str
    rows: int
    runs: list[Run] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # against hand, pair by pair

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    def worst(self, attr: str) -> float:
        return max(getattr(r, attr) for r in self.runs)


@dataclass
class Plan:
    sizes: list[int]
    repeats: int
    buffered_max_once: int  # above this row count the slow classic variant runs only once
    long_rows: int
    concurrent: int
    concurrent_rows: int
    scale_streams: int
    scale_rows: int
    scale_seconds: int  # each run of the steady load
    scale_pairs: int  # 1-process and 2-process runs, alternated
    chunk_sizes: tuple[int, ...]
    source_rows: int  # phase G: rows per stream
    source_repeats: int
    source_check_rows: int  # rows per stream of the SHA-256 check


FULL = Plan(
    sizes=[10_000, 100_000, 1_000_000],
    repeats=3,
    buffered_max_once=10_000,
    long_rows=10_000_000,
    concurrent=20,
    concurrent_rows=1_000_000,
    scale_streams=8,
    scale_rows=100_000,
    scale_seconds=20,
    scale_pairs=3,
    chunk_sizes=(8192, 32768, 131072, 524288),
    source_rows=1_000_000,
    source_repeats=2,
    source_check_rows=100_000,
)
QUICK = Plan(
    sizes=[100_000],
    repeats=2,
    buffered_max_once=0,
    long_rows=1_000_000,
    concurrent=20,
    concurrent_rows=100_000,
    scale_streams=8,
    scale_rows=100_000,
    scale_seconds=8,
    scale_pairs=2,
    chunk_sizes=(),
    source_rows=100_000,
    source_repeats=2,
    source_check_rows=5_000,
)


def server_env(rows: int) -> dict[str, str]:
    return {
        "TABLESTREAM_DB": "",
        "TABLESTREAM_SYNTHETIC_ROWS": str(rows),
        "TABLESTREAM_LOG_LEVEL": "warning",  # As behind nginx: the bench's fixed X-Request-ID is kept, so pages compare byte for byte.
        "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
    }


def _url(server: ServerProcess, variant: str, rows: int, size: int = 0) -> str:
    if variant in ("service", "service_gzip"):
        return f"{server.url}/tables/synthetic?limit={rows}"
    if variant == "ceiling":
        return f"{server.url}/bench/ceiling?bytes={size}"
    return f"{server.url}/bench/{variant}?limit={rows}"


def _measure(
    server: ServerProcess,
    url: str,
    rows: int,
    gzip: bool = False,
    cut_off: float | None = None,
    page_bytes: int = 0,
) -> Run:
    """One fetch of ``rows`` rows; with ``cut_off``, a fetch still running then is stopped and
    its rows/s is the share of the page (``page_bytes``, the same page from the service) it had
    sent, over the time it ran."""
    server.settle(0.3)
    before = server.rss()
    server.reset_peak()
    cpu = server.cpu_seconds()
    got = fetch(url, gzip, cut_off=cut_off)
    cpu = server.cpu_seconds() - cpu
    peak = server.peak() - before
    server.settle()
    done = rows * min(1.0, got.bytes / page_bytes) if got.cut_off and page_bytes else rows
    return Run(
        done / got.seconds,
        got.bytes / got.seconds / 1e6,
        got.ttfb,
        cpu,
        peak,
        server.rss() - before,
        got.bytes,
        got.cut_off,
    )


def _check_identical(server: ServerProcess) -> list[str]:
    """Every variant must send the same page as the service (the ceiling excepted)."""
    import hashlib
    import urllib.request

    digests = {}
    for variant in ("service", "hand", "buffered5", "render_template"):
        same_id = urllib.request.Request(
            _url(server, variant, 3000), headers={"X-Request-ID": "bench"}
        )
        with urllib.request.urlopen(same_id) as response:
            digests[variant] = hashlib.sha256(response.read()).hexdigest()
    return [v for v, d in digests.items() if d != digests["service"]]


def phase_a(plan: Plan, py: str, logs: Path) -> tuple[list[Cell], list[str]]:
    cells: list[Cell] = []
    different: list[str] = []
    for rows in plan.sizes:
        server = ServerProcess(
            server_env(rows),
            logs / "bench-server.log",
            argv=[py, "-m", "bench.server"],
            stop_timeout=40,
        )
        try:
            different = different or _check_identical(server)
            for variant in ("service", "hand", "buffered5", "render_template"):
                fetch(_url(server, variant, 1000))  # warm templates and caches
            by = {v: Cell(v, rows) for v in VARIANTS}
            for repeat in range(plan.repeats):
                for variant in ("service", "hand", "ceiling", "buffered5", "service_gzip"):
                    if variant == "buffered5" and repeat and rows > plan.buffered_max_once:
                        continue
                    size = by["service"].runs[-1].size if variant == "ceiling" else 0
                    url = _url(server, variant, rows, size)
                    if (
                        variant == "buffered5"
                    ):  # the classic recipe: may crawl, see BUFFERED_SECONDS
                        page = by["service"].runs[-1].size
                        run = _measure(server, url, rows, cut_off=BUFFERED_SECONDS, page_bytes=page)
                    else:
                        run = _measure(server, url, rows, variant == "service_gzip")
                    by[variant].runs.append(run)
                by["service"].ratios.append(
                    by["service"].runs[-1].rows_per_s / by["hand"].runs[-1].rows_per_s
                )
                print(
                    f"  {rows:>9,} rows, run {repeat + 1}: service {by['service'].runs[-1].rows_per_s:,.0f} rows/s, hand {by['hand'].runs[-1].rows_per_s:,.0f}",
                    flush=True,
                )
            for _ in range(plan.repeats if rows <= 1_000_000 else 1):
                by["render_template"].runs.append(
                    _measure(server, _url(server, "render_template", rows), rows)
                )
            cells.extend(by.values())
        finally:
            server.stop()
    return cells, different


def _serve(py: str, logs: Path, rows: int, **env: str) -> ServerProcess:
    argv = [str(Path(py).with_name("tablestream")), "serve"]
    return ServerProcess(
        {**server_env(rows), **env}, logs / "tablestream.log", argv=argv, stop_timeout=40
    )


def phase_b(plan: Plan, py: str, logs: Path) -> Cell:
    server = _serve(py, logs, plan.long_rows)
    try:
        fetch(_url(server, "service", 10_000))
        cell = Cell("service", plan.long_rows)
        cell.runs.append(_measure(server, _url(server, "service", plan.long_rows), plan.long_rows))
        return cell
    finally:
        server.stop()


def phase_c(plan: Plan, py: str, logs: Path) -> dict[str, float]:
    # As many stream slots as concurrent streams (the default 8 would answer the rest 503), and
    # the default reserve of 4 threads beside them.
    slots = plan.concurrent
    server = _serve(
        py,
        logs,
        plan.concurrent_rows,
        TABLESTREAM_THREADS=str(slots + 4),
        TABLESTREAM_STREAM_SLOTS=str(slots),
    )
    try:
        fetch(_url(server, "service", 10_000))
        server.settle()
        idle = server.rss()
        server.reset_peak()
        urls = [_url(server, "service", plan.concurrent_rows)] * plan.concurrent
        results, wall = fetch_many(urls)
        peak = server.peak() - idle
        server.settle(2)
        return {
            "streams": plan.concurrent,
            "rows": plan.concurrent_rows,
            "idle_mib": idle / MIB,
            "peak_mib": peak / MIB,
            "after_mib": (server.rss() - idle) / MIB,
            "rows_per_s": plan.concurrent * plan.concurrent_rows / wall,
            "complete": all(r.bytes == results[0].bytes for r in results),
        }
    finally:
        server.stop()


def phase_e(plan: Plan, py: str, logs: Path) -> list[Cell]:
    """The chunk size: one stream per TABLESTREAM_CHUNK_BYTES value, on fresh servers."""
    cells = []
    for chunk in plan.chunk_sizes:
        rows = min(plan.long_rows, 1_000_000)
        server = _serve(py, logs, rows, TABLESTREAM_CHUNK_BYTES=str(chunk))
        try:
            fetch(_url(server, "service", 10_000))
            cell = Cell(f"chunk {chunk // 1024} KiB", rows)
            for _ in range(2):
                cell.runs.append(_measure(server, _url(server, "service", rows), rows))
            cells.append(cell)
            print(
                f"  {chunk // 1024} KiB chunks: {cell.median('rows_per_s'):,.0f} rows/s", flush=True
            )
        finally:
            server.stop()
    return cells


@dataclass
class Scale:
    """Phase D: aggregate rows/s of 1 and 2 processes, run by run, and the server cores used."""

    rates: dict[int, list[float]] = field(default_factory=dict)
    cores: dict[int, list[float]] = field(default_factory=dict)
    mb_per_s: dict[int, list[float]] = field(default_factory=dict)  # on the wire
    client_cores: dict[int, list[float]] = field(default_factory=dict)  # wrk's CPU
    ratios: list[float] = field(default_factory=list)  # 2 processes over 1, pair by pair
    rows: int = 0  # per request

    def rate(self, processes: int) -> float:
        return statistics.median(self.rates[processes])

    def core_use(self, processes: int) -> float:
        return statistics.median(self.cores[processes])

    def mb_rate(self, processes: int) -> float:
        return statistics.median(self.mb_per_s[processes])

    def client_core_use(self, processes: int) -> float:
        return statistics.median(self.client_cores[processes])


def phase_d(plan: Plan, py: str, logs: Path) -> Scale:
    """The same closed-loop load on 1 and on 2 processes, alternated run by run."""
    servers = {p: _serve(py, logs, plan.scale_rows, TABLESTREAM_PROCESSES=str(p)) for p in (1, 2)}
    scale = Scale(*({1: [], 2: []} for _ in range(4)), rows=plan.scale_rows)
    try:
        for server in servers.values():
            fetch(_url(server, "service", 10_000))
        per_response = wire_bytes(_url(servers[1], "service", plan.scale_rows))
        for _ in range(plan.scale_pairs):
            for processes, server in servers.items():
                url = _url(server, "service", plan.scale_rows)
                cpu, started = server.cpu_seconds(), time.perf_counter()
                load = steady_load(url, plan.scale_streams, plan.scale_seconds)
                wall = time.perf_counter() - started
                if load.errors:
                    raise RuntimeError(f"{load.errors} failed requests to {url}")
                scale.cores[processes].append((server.cpu_seconds() - cpu) / wall)
                rows = load.bytes / per_response * plan.scale_rows
                scale.rates[processes].append(rows / load.seconds)
                scale.mb_per_s[processes].append(load.bytes / 1e6 / load.seconds)
                scale.client_cores[processes].append(load.client_cpu / wall)
            scale.ratios.append(scale.rates[2][-1] / scale.rates[1][-1])
            print(
                "  "
                + ", ".join(
                    f"{p} process(es) {scale.rates[p][-1]:,.0f} rows/s "
                    f"{scale.mb_per_s[p][-1]:.1f} MB/s on "
                    f"{scale.cores[p][-1]:.2f} cores (wrk {scale.client_cores[p][-1]:.2f})"
                    for p in servers
                )
                + f": {scale.ratios[-1]:.2f}x",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()
    return scale


def verdicts(
    plan: Plan, cells: list[Cell], long: Cell, conc: dict, scale: Scale, different: list[str]
) -> list[tuple[bool, str]]:
    top = max(plan.sizes)
    at = {(c.variant, c.rows): c for c in cells}
    ours, buffered = at[("service", top)], at[("buffered5", top)]
    ratio_hand = statistics.median(ours.ratios)
    ratio_buffered = ours.median("rows_per_s") / buffered.median("rows_per_s")
    cut = any(run.cut_off for run in buffered.runs)
    ttfb = max([c.median("ttfb") for c in cells if c.variant == "service"] + [long.median("ttfb")])
    lines = [
        (
            not different,
            f"same bytes from every variant: {'yes' if not different else 'NO: ' + ', '.join(different)}",
        ),
        (
            ratio_hand >= 1.0,
            f"service vs hand-built rows at {top:,} rows: {ratio_hand:.2f}x (target >= 1.0x, median of pairwise ratios)",
        ),
        (
            ratio_buffered >= 20,
            f"service vs enable_buffering(5) at {top:,} rows: {'at least ' if cut else ''}"
            f"{ratio_buffered:.1f}x (target >= 20x)"
            + (
                f"; its fetch stopped after {BUFFERED_SECONDS} s, rows/s from what it had sent"
                if cut
                else ""
            ),
        ),
        (
            ttfb <= 0.020,
            f"time to first byte, the service's median at its worst row count: {ttfb * 1000:.1f} ms (target <= 20 ms)",
        ),
    ]
    for cell in [c for c in cells if c.variant == "service" and c.rows >= 1_000_000] + [long]:
        after, peak = cell.worst("after") / MIB, cell.worst("peak") / MIB
        lines.append(
            (
                after <= 2 and peak <= 8,
                f"{cell.rows:,}-row stream: RSS after {after:+.1f} MiB (target within 2), peak {peak:+.1f} MiB (target <= 8)",
            )
        )
    lines.append(
        (
            conc["peak_mib"] <= 64 and conc["complete"],
            f"{conc['streams']} concurrent {conc['rows']:,}-row streams: peak {conc['peak_mib']:+.1f} MiB above idle (target <= 64), all complete: {conc['complete']}",
        )
    )
    ratio = statistics.median(scale.ratios)
    lines.append(
        (
            ratio >= 1.7,
            f"2 processes vs 1: {ratio:.2f}x aggregate rows/s ({scale.rate(1):,.0f} -> {scale.rate(2):,.0f}; target >= 1.7x, median of pairwise ratios)",
        )
    )
    return lines


def _phase_f(plan: Plan, py: str, logs: Path) -> SourcesResult:
    return phase_f(
        plan.source_rows, plan.source_repeats, plan.source_check_rows, py, logs, _measure
    )


def _sources_only(plan: Plan, py: str, logs: Path, out: Path, started: float) -> int:
    print("G: real sources", flush=True)
    sources = _phase_f(plan, py, logs)
    lines = source_verdicts(sources)
    report = out / "SOURCES.md"
    report.write_text("\n".join(report_lines(sources)))
    print()
    for ok, text in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    print("\n".join(source_figures(sources)))
    print(f"\nreport: {report} ({time.monotonic() - started:.0f} s)")
    return 0 if all(ok for ok, _ in lines) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one row count, fewer runs (~2 min)")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder [docs/ or runs/bench-quick/]"
    )
    parser.add_argument(
        "--sources-only",
        action="store_true",
        help="phase G (the real sources) alone; its table goes to runs/bench-sources/SOURCES.md",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out or Path(
        "runs/bench-sources" if args.sources_only else "runs/bench-quick" if args.quick else "docs"
    )
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="tablestream-bench-"))
    py = sys.executable
    started = time.monotonic()
    print(f"benchmark ({'quick' if args.quick else 'full'}); server logs in {logs}", flush=True)
    if args.sources_only:
        return _sources_only(plan, py, logs, out, started)
    steps = measure_steps(rows=100_000 if args.quick else 300_000)
    print("A: variants side by side", flush=True)
    cells, different = phase_a(plan, py, logs)
    print(f"B: one {plan.long_rows:,}-row stream", flush=True)
    long = phase_b(plan, py, logs)
    print(f"C: {plan.concurrent} concurrent streams", flush=True)
    conc = phase_c(plan, py, logs)
    print("D: 1 vs 2 processes", flush=True)
    scale = phase_d(plan, py, logs)
    print("E: chunk sizes", flush=True)
    chunks = phase_e(plan, py, logs)
    print("F: row templates", flush=True)
    row_plan = rowtemplates.QUICK if args.quick else rowtemplates.FULL
    rows = rowtemplates.measure_row_templates(row_plan, py, logs, _measure)
    print("G: real sources", flush=True)
    sources = _phase_f(plan, py, logs)
    lines = (
        verdicts(plan, cells, long, conc, scale, different)
        + rowtemplates.verdicts(rows)
        + source_verdicts(sources)
    )
    elapsed = time.monotonic() - started
    report = write_report(
        out,
        quick=args.quick,
        cells=cells,
        long=long,
        conc=conc,
        scale=scale,
        chunks=chunks,
        steps=steps,
        sources=report_lines(sources),
        verdicts=lines,
        extra=rowtemplates.report_lines(rows),
        elapsed=elapsed,
    )
    print()
    for ok, text in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    print("\n".join(source_figures(sources)))
    print(f"\nreport: {report} ({elapsed:.0f} s)")
    return 0 if all(ok for ok, _ in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
