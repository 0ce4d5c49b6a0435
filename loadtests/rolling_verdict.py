"""The rolling deploy judged from the clients' tallies and Prometheus: figures, targets, table.

Pure: it reads the JSON lines loadtests/mixed.py wrote and the numbers loadtests/rolling.py
measured, and says for each of issue 31's targets what was seen, what was wanted, and whether
it holds. ``make rolling`` prints the table and exits 1 when a line fails.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Figures", "Line", "in_flight", "nginx_errors", "p99", "read_tally", "table", "verdict"]

P99_RATIO = 2.0  # small-request p99 during the deploy, at most this times the one without
ROWS_TOLERANCE = 0.01  # Prometheus' row count within 1 % of the clients'
PER_INSTANCE = ("Instances scraped", "Streams in flight per instance")  # titles start so
# Panels of what a clean run does not do (no token is configured, no stream is refused); and
# streams in flight, 0 after the load has stopped, which sum by (table) still answers.
QUIET_PANELS = {"Authentication failures by reason", "Refused before streaming (503 by reason)"}


def read_tally(folder: Path) -> list[dict]:
    """Every ``end`` record of every worker's tally, in start order."""
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("ev") == "end":
                    records.append(record)
    return sorted(records, key=lambda r: r["t0"])


def in_flight(folder: Path) -> int:
    """Requests started and not yet ended, over every worker's tally."""
    count = 0
    for path in folder.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if '"ev": "start"' in line:
                count += 1
            elif '"ev": "end"' in line:
                count -= 1
    return count


_NGINX = {
    "connection refused (retried on the next)": "connect() failed (111",
    "reset before the response head (retried)": "while reading response header from upstream",
    "upstream marked down for fail_timeout": "upstream server temporarily disabled",
    "no live upstream (502)": "no live upstreams",
    "stream cut after its head (not retried)": "closed connection while reading upstream",
}


def nginx_errors(log: str) -> dict[str, int]:
    """nginx's error log, counted by what happened to the request."""
    return {what: log.count(pattern) for what, pattern in _NGINX.items()}


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass
class Figures:
    """What one run measured; the windows are (start, end) Unix times."""

    records: list[dict]
    baseline: tuple[float, float]
    deploy: tuple[float, float]
    replacements: list[tuple[str, float, float]] = field(default_factory=list)  # name, drain, start
    prometheus_rows: float = math.nan
    download_rows: int = 0  # rows the rolling runner's own downloads received in the window
    downloads: list[dict] = field(default_factory=list)  # sha_ok, resumes, rows, seconds
    alerts_during_deploy: list[str] = field(default_factory=list)  # firing
    pending_during_deploy: list[str] = field(default_factory=list)
    down_alert_after: float | None = None  # seconds from the kill to TablestreamDown's state
    down_alert_checked: str = ""  # the state waited for ("firing"; "pending" in the short form)
    down_alert_instances: list[str] = field(default_factory=list)
    down_victim: str = ""  # the killed instance's address:port
    fallback: str = ""
    nginx: dict[str, int] = field(default_factory=dict)  # what nginx's error log says, counted
    sums: dict[str, tuple[float, float]] = field(default_factory=dict)  # (Prometheus, direct)
    panels: dict[str, list[dict]] = field(default_factory=dict)  # dashboard title: its series
    instances: int = 3
    pages: list[Any] = field(default_factory=list)  # loadtests/pageresume.py PageResult
    pages_must_cut: bool = True
    shared: list[Any] = field(default_factory=list)  # clustershared.SharedCheck: before, after
    leases_left: dict[str, int] | None = None  # live leases by client once the load ended
    leases_expired: dict[str, int] = field(default_factory=dict)  # expired, never given back

    def small_ms(self, window: tuple[float, float]) -> list[float]:
        return [
            (r["t1"] - r["t0"]) * 1000
            for r in self.records
            if r["kind"] == "small" and window[0] <= r["t0"] < window[1]
        ]

    @property
    def client_rows(self) -> int:
        pages = sum(page.received for page in self.pages)
        return sum(r["rows"] for r in self.records) + self.download_rows + pages


@dataclass
class Line:
    target: str
    seen: str
    wanted: str
    ok: bool


def verdict(f: Figures) -> list[Line]:
    """One line per target of issue 31 (the alert lines only when they were checked)."""
    small = [r for r in f.records if r["kind"] == "small"]
    failed_small = [r for r in small if r["status"] != 200 or r["end"] == "neither"]
    streams = [r for r in f.records if r["status"] == 200 and r["kind"] != "small"]
    neither = [r for r in f.records if r["status"] == 200 and r["end"] == "neither"]
    base, dep = p99(f.small_ms(f.baseline)), p99(f.small_ms(f.deploy))
    rows_off = abs(f.prometheus_rows - f.client_rows) / max(1, f.client_rows)
    identical = [d for d in f.downloads if d["sha_ok"]]
    lines = [
        Line(
            "failed small requests (non-2xx, connection error, silent cut)",
            f"{len(failed_small)} of {len(small)}",
            "0",
            not failed_small and bool(small),
        ),
        Line(
            "streams ending with neither success end nor marker",
            f"{len(neither)} of {len(streams) + len(small)}",
            "0",
            not neither,
        ),
        Line(
            "small p99 during deploy / without",
            f"{dep:.0f} ms / {base:.0f} ms = {dep / base:.2f}x",
            f"<= {P99_RATIO:.0f}x",
            dep <= P99_RATIO * base,
        ),
        Line(
            "downloads byte-identical to an uninterrupted one (SHA-256)",
            f"{len(identical)} of {len(f.downloads)}, "
            f"{sum(d['resumes'] for d in f.downloads)} resumes",
            "all, >= 1 resumed",
            bool(f.downloads)
            and len(identical) == len(f.downloads)
            and any(d["resumes"] for d in f.downloads),
        ),
        Line(
            "Prometheus sum(increase(rows)) vs rows the clients counted",
            f"{f.prometheus_rows:,.0f} vs {f.client_rows:,} ({rows_off:.2%})",
            f"within {ROWS_TOLERANCE:.0%}",
            rows_off <= ROWS_TOLERANCE,
        ),
        Line(
            "alerts firing during the deploy",
            (", ".join(f.alerts_during_deploy) or "none")
            + (f" (pending: {', '.join(f.pending_during_deploy)})" * bool(f.pending_during_deploy)),
            "none",
            not f.alerts_during_deploy,
        ),
    ]
    cut = [page for page in f.pages if page.cuts]
    failed = [page for page in f.pages if page.problem]
    lines.append(
        Line(
            "pages cut by a drain that resumed to their footer, every id once",
            f"{sum(1 for page in cut if not page.problem)} of {len(cut)} "
            f"({sum(page.resumes for page in f.pages)} resumes); "
            f"{len(failed)} of {len(f.pages)} pages failed",
            "all" + (", >= 1 cut" if f.pages_must_cut else ""),
            bool(f.pages) and not failed and (bool(cut) or not f.pages_must_cut),
        )
    )
    for when, check in zip(("before the rounds", "after the rounds"), f.shared, strict=False):
        lines.append(
            Line(
                f"client cap {check.cap} across instances, /streams/<id> on each, {when}",
                check.seen(),
                "cap+1 429, all 200, 0 left",
                check.ok,
            )
        )
    if f.leases_left is not None:
        left = sum(f.leases_left.values())
        lines.append(
            Line(
                "client leases left in Redis once the load ended",
                f"{left}"
                + (f" ({', '.join(sorted(f.leases_left))})" if left else "")
                + f"; expired, never given back: {sum(f.leases_expired.values())}",
                "0",
                not left,
            )
        )
    if f.sums:
        lines.append(
            Line(
                "Prometheus' sum over instances = sum of their /metrics",
                ", ".join(f"{p:,.0f}={d:,.0f}" for p, d in f.sums.values()),
                "equal (rows, streams)",
                all(p == d for p, d in f.sums.values()),
            )
        )
    if f.panels:
        empty = [title for title, series in f.panels.items() if not series]
        per_instance = [
            len({s.get("instance") for s in series})
            for title, series in f.panels.items()
            if title.startswith(PER_INSTANCE)
        ]
        lines.append(
            Line(
                "dashboard panels answering; per-instance panels' lines",
                f"{len(f.panels) - len(empty)} of {len(f.panels)}; {per_instance}",
                f"traffic panels; {f.instances} each",
                per_instance == [f.instances] * len(PER_INSTANCE) and not set(empty) - QUIET_PANELS,
            )
        )
    if f.down_alert_checked:
        seen = "never" if f.down_alert_after is None else f"after {f.down_alert_after:.0f} s"
        lines.append(
            Line(
                f"TablestreamDown {f.down_alert_checked} for a killed, unreplaced instance only",
                f"{seen} {', '.join(f.down_alert_instances)}",
                f"{f.down_alert_checked}, that instance",
                f.down_alert_instances == [f.down_victim],
            )
        )
    return lines


def table(f: Figures, lines: list[Line]) -> str:
    """The figures and the verdict as text (the report and docs/operations.md quote it)."""
    ends = Counter((r["kind"], r["status"], r["end"]) for r in f.records)
    out = [
        f"hosts: {'network namespaces' if not f.fallback else '127.0.0.x (' + f.fallback + ')'}",
        "replacements (instance, drain s, start-to-ready s): "
        + ", ".join(f"{n} {d:.1f}/{s:.1f}" for n, d, s in f.replacements),
        "requests by kind, status, end:",
        *(f"  {k:9} {s:3} {e or '-':9} {n:6}" for (k, s, e), n in sorted(ends.items())),
        f"cut with a resume point: {sum(1 for r in f.records if r.get('resume'))}, "
        f"without: {sum(1 for r in f.records if r['end'] == 'marker' and not r.get('resume'))}",
        "nginx: " + ", ".join(f"{what} {n}" for what, n in f.nginx.items()),
        f"rows received / asked by streams cut with a marker: "
        f"{sum(r['rows'] for r in f.records if r['end'] == 'marker'):,} / "
        f"{sum(r['expected'] or 0 for r in f.records if r['end'] == 'marker'):,}",
        f"pages read resuming: {len(f.pages)}, cut {sum(1 for p in f.pages if p.cuts)}, "
        f"rows received {sum(p.received for p in f.pages):,}, kept "
        f"{sum(p.kept for p in f.pages):,}",
        *(f"  page {p.url}: {p.problem}" for p in f.pages if p.problem),
        "",
        f"{'target':62} {'seen':36} {'wanted':18} verdict",
    ]
    out += [
        f"{line.target:62} {line.seen:36} {line.wanted:18} {'PASS' if line.ok else 'FAIL'}"
        for line in lines
    ]
    passed = all(line.ok for line in lines)
    out.append(f"verdict: {'PASS' if passed else 'FAIL'}")
    return "\n".join(out)
