"""One folder per run: the memory samples as CSV, the verdict as text, and a PNG to look at.

locust writes its own ``--csv`` stats into the same folder (the runner points ``--csv`` there).
The plot has two panels: memory against time with the row steps shaded, and each step's peak
memory against rows per stream (log scale) — a flat server draws a flat line in both.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

# Figure without pyplot: no global figure manager or GUI backend in a gevent process, and
# savefig renders with Agg.
from matplotlib.figure import Figure

from .memwatch import MemorySample
from .verdict import MIB, Verdict

__all__ = ["write_report"]


def _write_samples(path: Path, samples: Sequence[MemorySample]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rows_per_stream", "users", "rss_bytes", "rss_max_bytes",
                         "processes"])  # fmt: skip
        for s in samples:
            writer.writerow([f"{s.seconds:.3f}", s.rows, s.users, int(s.rss_total),
                             int(s.rss_max), s.processes])  # fmt: skip


def _plot(path: Path, samples: Sequence[MemorySample], verdict: Verdict) -> None:
    fig = Figure(figsize=(13, 5), layout="tight")
    left, right = fig.subplots(1, 2, width_ratios=(2, 1))
    left.plot([s.seconds for s in samples], [s.rss_total / MIB for s in samples], color="C0",
              marker=".", markersize=3, linewidth=1)  # fmt: skip
    for i, step in enumerate(verdict.steps):
        end = verdict.steps[i + 1].start if i + 1 < len(verdict.steps) else step.end
        left.axvspan(step.start, end, color="C1" if i % 2 else "C2", alpha=0.15, linewidth=0)
        left.text((step.start + end) / 2, 0.02, f"{step.rows:,} rows",
                  transform=left.get_xaxis_transform(), ha="center", fontsize=8)  # fmt: skip
    left.set(xlabel="seconds since the load started", ylabel="server resident memory (MiB)",
             title="Memory over time, row steps shaded")  # fmt: skip
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)

    rows = [s.rows for s in verdict.steps]
    right.plot(rows, [s.peak_mib for s in verdict.steps], marker="o", label="peak")
    right.plot(rows, [s.median_mib for s in verdict.steps], marker=".", label="median")
    if len(verdict.steps) > 1:
        allowed = [s.peak_mib + verdict.thresholds.max_step_growth_mib for s in verdict.steps]
        right.plot(rows[1:], allowed[:-1], color="C3", linestyle="none", marker="_",
                   markersize=14, label="allowed peak (previous peak + growth limit)")  # fmt: skip
    right.set_xscale("log")
    right.set(xlabel="rows per stream", ylabel="MiB", title="Memory per row step")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(verdict.lines()[0])
    fig.savefig(path, dpi=100)


def write_report(folder: Path, samples: Sequence[MemorySample], verdict: Verdict) -> Path:
    """Write memory.csv, verdict.txt and memory.png into ``folder``; return the PNG's path."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_samples(folder / "memory.csv", samples)
    (folder / "verdict.txt").write_text("\n".join(verdict.lines()) + "\n")
    png = folder / "memory.png"
    _plot(png, samples, verdict)
    return png
