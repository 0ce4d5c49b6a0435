"""The benchmark's report: a markdown file people read and a PNG they look at.

The tables carry medians and the number of runs behind each; the prose explains where memory
goes, because the figures alone do not say which setting bounds them.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
_LABELS = {
    "service": "this service (`stream_template` + `rows_html` + byte chunker)",
    "service_gzip": "this service, gzip level 1 chunk by chunk (MB = compressed bytes sent)",
    "hand": "rows built by hand in Python, no Jinja (join + escape), byte chunker",
    "ceiling": "one pre-built chunk repeated (server + socket ceiling)",
    "buffered5": "`stream_template` per-cell loop, `enable_buffering(5)` (classic recipe)",
    "render_template": "`render_template`, per-cell loop, whole page in memory",
}

_MEMORY_NOTES = """\
## Where memory goes, and what bounds it

- **The page is never in memory.** Rows are read a batch at a time (SQLite/PostgreSQL
  `fetchmany` of `TABLESTREAM_FETCH_ROWS`, rendered 256 rows at a time) and the chunker holds at
  most one chunk (`TABLESTREAM_CHUNK_BYTES`) plus one batch of rows. That is a few hundred KiB
  per stream, whatever the row count.
- **waitress's output buffer** is the one place bytes wait: a channel buffers what the client
  has not read yet, in memory up to `TABLESTREAM_OUTBUF_OVERFLOW` (1 MiB here, waitress's
  default is 1 MiB) and then in a temporary file, and the app thread blocks once
  `TABLESTREAM_OUTBUF_HIGH_WATERMARK` is reached (2 MiB here; waitress's default, 16 MiB, let RSS
  climb to ~100 MB over a few requests in the prototype). A slow reader therefore costs a
  bounded amount, not the table: up to overflow + high watermark of RAM (waitress copies up to
  the whole unsent buffer for every send attempt) and up to twice the high watermark of temp
  file; `tests/test_slow_readers.py` measures 50 of them (see docs/failure-behaviour.md).
- **The allocator** keeps freed memory: glibc gives every thread its own arena, so with 8
  waitress threads RSS rises until every thread has had a stream. `TABLESTREAM_MALLOC_ARENAS=1`
  (the default) caps that, and the service calls `malloc_trim` when the last stream in flight
  ends, so an idle server gives freed heap back.
- `render_template` holds the whole page (as `str` and then as UTF-8 bytes) and waitress may
  spill it to a temp file: memory grows with the row count and glibc keeps most of it.
"""


def _row(cell: Any) -> str:
    ratio = f"{sorted(cell.ratios)[len(cell.ratios) // 2]:.2f}x" if cell.ratios else ""
    return (
        f"| {_LABELS[cell.variant]} | {cell.rows:,} | {len(cell.runs)} | {cell.runs[0].size / 1e6:,.1f} "
        f"| {cell.median('rows_per_s'):,.0f} | {cell.median('mb_per_s'):,.1f} "
        f"| {cell.median('ttfb') * 1000:,.1f} | {cell.median('cpu'):.2f} "
        f"| {cell.worst('peak') / MIB:+.1f} | {cell.worst('after') / MIB:+.1f} | {ratio} |"
    )


def _gzip_lines(cells: list[Any]) -> list[str]:
    at = {(c.variant, c.rows): c for c in cells if c.runs}
    lines = []
    for (variant, rows), zipped in sorted(at.items()):
        plain = at.get(("service", rows))
        if variant != "service_gzip" or plain is None:
            continue
        ratio = plain.runs[0].size / zipped.runs[0].size
        speed = zipped.median("rows_per_s") / plain.median("rows_per_s")
        cpu = zipped.median("cpu") / plain.median("cpu")
        lines.append(
            f"gzip at {rows:,} rows: {ratio:.1f}x fewer bytes, {speed:.0%} of the plain "
            f"stream's rows/s, {cpu:.2f}x its server CPU."
        )
    return [*lines, ""] if lines else []


def _chunk_lines(chunks: list[Any]) -> list[str]:
    if not chunks:
        return []
    return [
        "## Chunk size",
        "",
        f"One {chunks[0].rows:,}-row stream per `TABLESTREAM_CHUNK_BYTES`, fresh server each, 2 runs.",
        "",
        "| chunk size | rows/s | first byte ms | peak RSS MiB | RSS after MiB |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {c.variant.removeprefix('chunk ')} | {c.median('rows_per_s'):,.0f} | {c.median('ttfb') * 1000:.1f} | {c.worst('peak') / MIB:+.1f} | {c.worst('after') / MIB:+.1f} |"
            for c in chunks
        ],
        "",
    ]


def _plot(path: Path, cells: list[Any], scale: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, speed) = plt.subplots(1, 2, figsize=(13, 5))
    for variant in _LABELS:
        points = sorted(
            (c.rows, c.worst("peak") / MIB) for c in cells if c.variant == variant and c.runs
        )
        if points and variant not in ("ceiling", "service_gzip"):
            mem.plot(*zip(*points, strict=True), marker="o", label=variant)
    mem.set_xscale("log")
    mem.set_xlabel("rows per stream")
    mem.set_ylabel("server peak RSS above start (MiB)")
    mem.set_title("Memory vs rows")
    mem.grid(alpha=0.3)
    mem.legend()
    top = max(c.rows for c in cells)
    bars = [
        (c.variant, c.median("rows_per_s") / 1000)
        for c in cells
        if c.rows == top and c.runs and c.variant != "ceiling"
    ]
    bars += [(f"service x{p} proc", scale.rate(p) / 1000) for p in sorted(scale.rates)]
    speed.barh([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
    speed.set_xlabel(
        f"thousand rows/s ({top:,} rows per stream; processes: {scale.rows:,}-row streams)"
    )
    speed.set_title("Throughput")
    speed.invert_yaxis()
    for i, (_, value) in enumerate(bars):
        speed.text(value, i, f" {value:,.0f}k", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path,
    *,
    quick: bool,
    cells: list,
    long: Any,
    conc: dict,
    scale: Any,
    chunks: list,
    steps: list,
    sources: list[str],
    verdicts: list,
    elapsed: float,
    extra: Sequence[str] = (),
) -> Path:
    """Write BENCHMARKS.md (and benchmarks.png) into ``out``; the markdown file's path."""
    png = out / "benchmarks.png"
    _plot(png, cells, scale)
    versions = ", ".join(f"{p} {version(p)}" for p in ("flask", "jinja2", "markupsafe", "waitress"))
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make {'bench-quick' if quick else 'bench'}` ({elapsed:.0f} s). Machine: "
        f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}, {versions}. "
        "Server: `tablestream serve` defaults (waitress, 264 threads of which 260 stream slots, admission by measured load, 32 KiB chunks), client: curl "
        "on 127.0.0.1 writing to /dev/null (wrk for the 1 vs 2 processes load). The machine is shared, so compare rows of one run, "
        "not runs of different days.",
        "",
        "## Verdict",
        "",
        *[f"- {'PASS' if ok else '**FAIL**'}: {text}" for ok, text in verdicts],
        "",
        f"![memory and throughput]({png.name})",
        "",
        "## Side by side",
        "",
        "Same rows, same bytes (checked by SHA-256 at 3,000 rows). Medians of the runs shown; "
        "peak and after are the worst run's RSS above the RSS just before the request; "
        "the ratio is the service's rows/s over the hand-built variant's, run by run.",
        "",
        "| way of producing the page | rows | runs | MB | rows/s | MB/s | first byte ms | server CPU s | peak RSS MiB | RSS after MiB | vs hand |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[_row(c) for c in cells if c.runs],
        "",
        *_gzip_lines(cells),
        "## The service alone: one long stream, many streams, more processes",
        "",
        "| what | rows/s | first byte ms | peak RSS MiB | RSS after MiB |",
        "|---|---:|---:|---:|---:|",
        f"| one {long.rows:,}-row stream | {long.median('rows_per_s'):,.0f} | {long.median('ttfb') * 1000:.1f} | {long.worst('peak') / MIB:+.1f} | {long.worst('after') / MIB:+.1f} |",
        f"| {conc['streams']} concurrent {conc['rows']:,}-row streams, 1 process (idle RSS {conc['idle_mib']:.0f} MiB) | {conc['rows_per_s']:,.0f} total | | {conc['peak_mib']:+.1f} | {conc['after_mib']:+.1f} |",
        *[
            f"| {p} process{'es' if p > 1 else ''} (`--processes {p}`), 8 wrk connections, server on {scale.core_use(p):.2f} cores, wrk on {scale.client_core_use(p):.2f} | {scale.rate(p):,.0f} total ({scale.mb_rate(p):.1f} MB/s) | | | |"
            for p in sorted(scale.rates)
        ],
        "",
        "One process is bound to one core by the GIL; `TABLESTREAM_PROCESSES=2` (or two "
        "`tablestream serve` behind a load balancer) uses the second core. The 1- and 2-process "
        "servers run alternately, each run a fixed window of wrk load (8 connections, a new "
        "connection per request); 2 processes vs 1, pair by pair: "
        + ", ".join(f"{r:.2f}x" for r in scale.ratios)
        + ". wrk and the loopback traffic share the two cores with the servers, so 2 processes "
        "get less than 2 cores between them; per server core, 1 process did "
        f"{scale.rate(1) / scale.core_use(1):,.0f} rows/s with all 8 streams and 2 processes "
        f"{scale.rate(2) / scale.core_use(2):,.0f} with about 4 each.",
        "",
        *_chunk_lines(chunks),
        *extra,
        *sources,
        "## What each optimisation bought",
        "",
        "In process (template stream + chunker, no HTTP), the same synthetic rows; `python -m bench.steps`.",
        "",
        "| step | rows/s |",
        "|---|---:|",
        *[f"| {name} | {rate:,.0f} |" for name, rate in steps],
        "",
        _MEMORY_NOTES,
    ]
    path = out / "BENCHMARKS.md"
    path.write_text("\n".join(lines))
    return path
