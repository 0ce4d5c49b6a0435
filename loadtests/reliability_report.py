"""The reliability suite's figures table, its verdict lines, and their section in the docs.

Kept apart from the attacks so that what is printed and what lands in ``docs/reliability.md``
are one rendering of the same rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.probes import ProbeFigures, percentile

__all__ = ["TARGETS", "Check", "Row", "render", "verdict_lines", "write_docs"]

MIB = 1024 * 1024

# The "Targets", word for word; each attack is judged against one of them.
TARGETS = {
    "stalled": "20 non-reading stream clients plus 250 slowloris sockets at the same time, for "
    "60 s: /healthz on the main port p99 ≤ 100 ms and never unanswered; a 10-row table request "
    "completes within 1 s every time; the attack sockets are closed by the server within the "
    "header deadline; RSS back within 5 MiB of idle afterwards.",
    "streams": "8 legitimate 2M-row streams reading at full speed: /healthz p99 ≤ 100 ms.",
    "slots": "More stream requests than slots: the extra ones get 503 + Retry-After in ≤ 50 ms; "
    "none is silently queued; the metric counts them.",
    "drain": "SIGTERM with streams in flight: a new connection is refused (or answered 503) "
    "within 100 ms; /readyz is 503 from the signal on.",
    "expect": "Expect: 100-continue GET → 200.",
    "flood_one": "5,000 reconnecting slowloris sockets from one address, 60 s: /healthz p99 ≤ "
    "100 ms, every 10-row page ≤ 1 s, 0 probes unanswered.",
    "flood_many": "10,000 trickling sockets from 100 addresses (100 each), 60 s: /healthz p99 ≤ "
    "100 ms, 0 unanswered; RSS ≤ +640 MiB during, back within 5 MiB of idle after; a legitimate "
    "1M-row stream during the attack keeps ≥ 0.5x its quiet rows/s.",
    "bench": "No regression: make bench verdicts stay green (rows/s within noise of today).",
}


@dataclass
class Check:
    what: str
    passed: bool
    measured: str


@dataclass
class Row:
    """One attack's line in the table and the checks its verdict is made of."""

    target: str  # a key of TARGETS
    attack: str
    sockets: str
    figures: ProbeFigures
    rejected: float | None
    rss_idle: int
    rss_after: int | None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "no answer" if math.isinf(seconds) else f"{seconds * 1000:.0f} ms"


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / MIB:.1f}"


def _row_cells(row: Row) -> list[str]:
    f = row.figures
    health = f.latencies("health")
    small = f.latencies("small")
    small_ok = sum(1 for s in small if s <= 1.0)
    answered = len(f.answered("health"))
    return [
        row.attack,
        row.sockets,
        f"{_ms(percentile(health, 0.5))} / {_ms(percentile(health, 0.99))} / "
        f"{_ms(max(health, default=None))} ({answered} of {len(health)} answered)",
        f"{_ms(percentile(small, 0.5))} / {_ms(max(small, default=None))} "
        f"({small_ok} of {len(f.small)} within 1 s)",
        "n/a" if row.rejected is None else f"{row.rejected:.0f}",
        f"{_mib(row.rss_idle)} / {_mib(f.rss_peak)} / {_mib(row.rss_after)}",
        _mib(f.disk_peak),
        f"{f.sockets_peak:,}",
        "-" if f.cpu_percent is None else f"{f.cpu_percent:.0f}",
        "PASS" if row.passed else "FAIL",
    ]


def render(rows: list[Row]) -> str:
    """The figures table as Markdown (it reads as plain text in a terminal too)."""
    head = [
        "Attack",
        "Sockets",
        "/healthz p50 / p99 / max",
        "10-row page p50 / max",
        "Rejected (503)",
        "RSS idle / peak / after (MiB)",
        "Temp-file disk peak (MiB)",
        "Server sockets peak",
        "Server CPU %",
        "Verdict",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_row_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def verdict_lines(rows: list[Row]) -> list[str]:
    """One verdict per target of the issue, then each of its checks with what was measured."""
    lines = []
    for key, text in TARGETS.items():
        judged = [row for row in rows if row.target == key]
        if not judged:
            why = "run `make bench`" if key == "bench" else "not run this time"
            lines.append(f"- NOT JUDGED HERE ({why}): {text}")
            continue
        passed = all(row.passed for row in judged)
        lines.append(f"- {'PASS' if passed else 'FAIL'}: {text}")
        for row in judged:
            for check in row.checks:
                mark = "ok" if check.passed else "FAILED"
                lines.append(f"  - {mark}: {check.what} — {check.measured}")
            lines += [f"  - note: {note}" for note in row.notes]
    return lines


def write_docs(path: Path, label: str, heading: str, body: str) -> None:
    """Replace (or append) the section between this label's markers in ``path``."""
    start, end = f"<!-- reliability:{label}:start -->", f"<!-- reliability:{label}:end -->"
    section = f"{start}\n{heading}\n\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
