"""Judge the server's memory samples: does memory grow with the rows per stream, or with time?

Plain arithmetic on ``(seconds, rows per stream, resident bytes)`` samples, no locust, so the
maths is unit-tested on its own. The first row step is the warm-up (threads, buffers and the
allocator reach their working size) and serves only as the reference. Two figures are judged:

- **growth per step**: peak memory of each step minus the peak of the step before. A server
  that holds the page (``render_template``, a list of chunks) grows by about the page size
  times the concurrent streams at each tenfold step.
- **slope within steps**: memory against time within each step, after its first ``settle``
  seconds (buffers fill as the bigger streams start). It is the median of the slopes between
  every two samples of the same step (Theil-Sen, pooled over the steps): pairs never span two
  steps, so the rise from one step to the next is not mistaken for a leak, and the median
  ignores short spikes (a page rendering, a buffer filling). A per-request leak shows here.

The line fitted through the step peaks against log10(rows per stream) — MiB per tenfold rows —
is printed too, for the eye: the steps are tenfold apart, and a linear fit in rows would be
the top step's difference alone, scaled up.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Sample", "StepFigures", "Thresholds", "Verdict", "judge"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the load started
    rows: int  # rows per stream of the step running when the sample was taken
    rss_bytes: float  # server resident memory, summed over its processes


@dataclass(frozen=True)
class Thresholds:
    max_step_growth_mib: float = 24.0
    max_slope_mib_per_min: float = 10.0
    settle_seconds: float = 10.0


@dataclass(frozen=True)
class StepFigures:
    rows: int
    samples: int
    start: float
    end: float
    peak_mib: float
    median_mib: float


@dataclass
class Verdict:
    passed: bool
    steps: list[StepFigures]
    growth_mib: float | None = None  # the largest peak-to-peak growth between two steps
    growth_between: tuple[int, int] | None = None
    slope_mib_per_min: float | None = None
    mib_per_tenfold_rows: float | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    reasons: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The figures judged, one per line, as printed at the end of a run."""
        t = self.thresholds
        out = [f"verdict: {'PASS' if self.passed else 'FAIL'}"]
        for i, s in enumerate(self.steps, 1):
            out.append(
                f"  step {i}: {s.rows:>9,} rows/stream  {s.samples:3d} samples over "
                f"{s.end - s.start:5.1f}s  peak {s.peak_mib:7.1f} MiB"
                f"  median {s.median_mib:7.1f} MiB" + ("  (warm-up, reference)" if i == 1 else "")
            )
        if self.growth_mib is not None and self.growth_between:
            a, b = self.growth_between
            out.append(
                f"  growth per step: max {self.growth_mib:+.1f} MiB ({a:,} -> {b:,} rows/stream);"
                f" limit {t.max_step_growth_mib:g} MiB"
            )
        if self.slope_mib_per_min is not None:
            out.append(
                f"  slope within steps: {self.slope_mib_per_min:+.2f} MiB/min (after "
                f"{t.settle_seconds:g}s settle); limit {t.max_slope_mib_per_min:g} MiB/min"
            )
        if self.mib_per_tenfold_rows is not None:
            out.append(
                f"  memory vs rows: {self.mib_per_tenfold_rows:+.2f} MiB per tenfold rows/stream "
                "(line through the step peaks; not judged)"
            )
        out += [f"  FAIL: {reason}" for reason in self.reasons]
        return out


def _steps(samples: Sequence[Sample]) -> list[list[Sample]]:
    """Consecutive samples with the same rows per stream form one step."""
    steps: list[list[Sample]] = []
    for s in samples:
        if steps and steps[-1][0].rows == s.rows:
            steps[-1].append(s)
        else:
            steps.append([s])
    return steps


def _fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys against xs (None when xs do not vary)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _pooled_theil_sen(groups: Sequence[Sequence[tuple[float, float]]]) -> float | None:
    """Median slope between every two points of the same group (None without such a pair)."""
    slopes = [
        (y2 - y1) / (x2 - x1)
        for points in groups
        for (x1, y1), (x2, y2) in itertools.combinations(points, 2)
        if x2 > x1
    ]
    return statistics.median(slopes) if slopes else None


def judge(samples: Sequence[Sample], thresholds: Thresholds | None = None) -> Verdict:
    """The verdict on one run's samples (in time order)."""
    t = thresholds or Thresholds()
    groups = _steps(samples)
    figures = [
        StepFigures(
            rows=g[0].rows,
            samples=len(g),
            start=g[0].seconds,
            end=g[-1].seconds,
            peak_mib=max(s.rss_bytes for s in g) / MIB,
            median_mib=statistics.median(s.rss_bytes for s in g) / MIB,
        )
        for g in groups
    ]
    verdict = Verdict(passed=False, steps=figures, thresholds=t)
    if len(figures) < 2:
        verdict.reasons.append(
            f"memory was sampled in {len(figures)} row step(s); at least 2 are needed to judge "
            "(was /metrics reachable, and did the run last past the first step?)"
        )
        return verdict

    growths = [(b.peak_mib - a.peak_mib, a.rows, b.rows) for a, b in itertools.pairwise(figures)]
    growth, rows_from, rows_to = max(growths)
    verdict.growth_mib, verdict.growth_between = growth, (rows_from, rows_to)
    if growth > t.max_step_growth_mib:
        verdict.reasons.append(
            f"memory grew {growth:.1f} MiB from the {rows_from:,}-row step to the {rows_to:,}-row"
            f" step; at most {t.max_step_growth_mib:g} MiB is allowed"
        )

    settled = [
        [
            (s.seconds / 60, s.rss_bytes / MIB)
            for s in g
            if s.seconds >= g[0].seconds + t.settle_seconds
        ]
        for g in groups[1:]
    ]
    slope = _pooled_theil_sen(settled)
    verdict.slope_mib_per_min = slope
    if slope is None:
        verdict.reasons.append(
            f"too few samples after each step's first {t.settle_seconds:g}s to fit a slope "
            "(longer steps or more frequent samples)"
        )
    elif slope > t.max_slope_mib_per_min:
        verdict.reasons.append(
            f"memory rose {slope:.2f} MiB/min within steps; at most "
            f"{t.max_slope_mib_per_min:g} MiB/min is allowed"
        )

    verdict.mib_per_tenfold_rows = _fit_slope(
        [math.log10(f.rows) for f in figures], [f.peak_mib for f in figures]
    )
    verdict.passed = not verdict.reasons
    return verdict
