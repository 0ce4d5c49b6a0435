"""The capacity curve: aggregate MB/s and ``/healthz`` p99 against the number of readers.

Drawn by ``python -m bench.capacity --plot PATH`` for docs/performance.md: one line per reader
rate, N on a log axis, so where a process stops adding throughput and where its probes start
to wait are seen together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot"]


def plot(runs: Sequence[Any], path: Path, quantile: Any) -> None:
    """Write the curve of ``runs`` (bench.capacity ``Run``s) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, probe) = plt.subplots(1, 2, figsize=(12, 4.5))
    for rate in sorted({r.rate for r in runs}, reverse=True):
        mine = sorted((r for r in runs if r.rate == rate), key=lambda r: r.n)
        label = f"{rate / 1e6:g} MB/s per reader"
        ns = [r.n for r in mine]
        speed.plot(ns, [r.aggregate / 1e6 for r in mine], marker="o", label=label)
        probe.plot(ns, [quantile(r.healthz, 0.99) * 1000 for r in mine], marker="o", label=label)
    for axis, title, unit in (
        (speed, "Aggregate MB/s of the accepted readers", "MB/s"),
        (probe, "/healthz p99 during the run", "ms"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("readers (N)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    probe.axhline(100, color="tab:red", linestyle="--", linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
