"""The reader's memory: a big table page in Debian's Chromium, from the first byte to `complete`.

    .venv-dev/bin/python bench/browser_memory.py [--rows 10000000] [--page-rows N] [--timeout 900]

Starts ``tablestream serve`` as its own process with a ``synthetic`` table of ROWS rows, opens
``/tables/synthetic`` in headless Chromium (Playwright, the page's real Content-Security-Policy)
and, while it streams, samples twice a second the RSS of every Chromium process (the browser,
renderer, GPU and utility processes together, from /proc via psutil) and how long a trivial
DevTools evaluation waits for the page's main thread. Once the page says `complete` it jumps to
row ROWS-1 and back to row 1 with the page's own "go to row" control, timing each until the row
is in view, and compares the rows shown with the same rows as the stream put them in the page.
Prints the figures as JSON and a verdict against issue 18's targets. ``--page-rows 0`` is the
page that keeps every row (what the page cost before; also the page without scripts).
Measuring hooks are added with DevTools (``add_init_script``), which the CSP does not govern.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tablestream.sources.synthetic import synthetic_row  # noqa: E402
from tablestream.stream.markup import rows_html  # noqa: E402
from tablestream.testing import ServerProcess  # noqa: E402

GIB = 1024**3
RSS_LIMIT = 1.5 * GIB
DEVTOOLS_MEDIAN_MS = 200
JUMP_MS = 1000

# The first row and the last rows as the stream put them in the page (the last ones read at
# DOMContentLoaded, before the page's script releases them), paint and parse times.
PROBE = """
window.__probe = {fcp: null, dcl: null, first: null, tail: []};
new PerformanceObserver(list => {
  for (const e of list.getEntries())
    if (e.name === "first-contentful-paint") window.__probe.fcp = e.startTime;
}).observe({type: "paint", buffered: true});
(function frame() {
  const row = document.querySelector("#ts-table tbody tr");
  if (row) window.__probe.first = row.innerHTML;
  else requestAnimationFrame(frame);
})();
document.addEventListener("DOMContentLoaded", () => {
  window.__probe.dcl = performance.now();
  const bodies = document.getElementById("ts-table").tBodies;
  const rows = bodies[bodies.length - 1].rows;  // none when they came as a count
  window.__probe.tail = [...rows].slice(-2).map(r => r.innerHTML);
});
"""

# Go to row n (from 1) with the page's own control; resolve when it is in view, with the time.
JUMP = """async (n) => {
  const t0 = performance.now();
  document.getElementById("ts-row").value = String(n);
  document.getElementById("ts-goto").requestSubmit();
  const table = document.getElementById("ts-table");
  for (;;) {
    await new Promise(r => requestAnimationFrame(r));
    for (const body of table.tBodies) {
      const first = Number(body.dataset.first);
      if (body.hidden || body.dataset.first === undefined) continue;
      if (n - 1 < first || n - 1 >= first + body.rows.length) continue;
      const row = body.rows[n - 1 - first];
      const box = row.getBoundingClientRect();
      const top = table.tHead.getBoundingClientRect().bottom;
      if (box.top >= top - 1 && box.bottom <= innerHeight + 1)
        return {ms: performance.now() - t0, html: row.innerHTML};
    }
    if (performance.now() - t0 > 10000) return {ms: null, html: null};
  }
}"""


PARSE_ROW = """(m) => { const b = document.createElement("tbody"); b.innerHTML = m;
                       return b.rows[0].innerHTML; }"""


class ChromiumRss:
    """Samples the summed RSS of this process's Chromium descendants in a thread."""

    def __init__(self, every: float = 0.5) -> None:
        self.samples: list[tuple[float, int]] = []
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> ChromiumRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def now(self) -> int:
        total = 0
        for child in psutil.Process(os.getpid()).children(recursive=True):
            try:
                if "chrom" in child.name():
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._start, self.now()))
            self._stop.wait(self._every)

    def peak(self, until: float | None = None) -> int:
        return max((b for t, b in self.samples if until is None or t <= until), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--page-rows", type=int, default=None, help="TABLESTREAM_PAGE_ROWS")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to reach complete")
    args = parser.parse_args()

    env = {"TABLESTREAM_SYNTHETIC_ROWS": str(max(args.rows, 1)), "TABLESTREAM_DB": ""}
    if args.page_rows is not None:
        env["TABLESTREAM_PAGE_ROWS"] = str(args.page_rows)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(env, Path(tmp) / "server.log")
        try:
            report = measure(f"{server.url}/tables/synthetic", args)
        finally:
            server.stop()
    profile_ = report.pop("rss_profile_mib")
    print(json.dumps(report, indent=2))
    print("rss_profile_mib (s, MiB):", " ".join(f"{t}:{m}" for t, m in profile_))
    failures = verdict(report, args)
    print("verdict:", "PASS" if not failures else "FAIL: " + "; ".join(failures))


def measure(url: str, args: argparse.Namespace) -> dict:
    with sync_playwright() as playwright, ChromiumRss() as rss:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
        )
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.add_init_script(PROBE)
        started = time.monotonic()
        page.goto(url, wait_until="commit")
        round_trips = []
        while page.evaluate("document.readyState") == "loading":
            t = time.monotonic()
            page.evaluate("0")  # how long the page's main thread keeps a trivial call waiting
            round_trips.append((time.monotonic() - t) * 1000)
            if time.monotonic() - started > args.timeout:
                break
            time.sleep(0.5)
        state = page.evaluate("document.getElementById('ts-status').dataset.state")
        while state == "loading" and time.monotonic() - started < args.timeout:
            time.sleep(0.1)
            state = page.evaluate("document.getElementById('ts-status').dataset.state")
        completed_at = time.monotonic() - rss._start
        wall = time.monotonic() - started
        probe = page.evaluate("window.__probe")
        status = page.locator("#ts-status")
        report: dict = {
            "rows": args.rows,
            "page_rows": args.page_rows,
            "final_status": [status.get_attribute("data-state"), status.inner_text()],
            "first_contentful_paint_ms": round(probe["fcp"] or -1),
            "parsed_ms": round(probe["dcl"] or -1),
            "rows_per_s": round(args.rows / (probe["dcl"] / 1000)) if probe["dcl"] else None,
            "wall_to_complete_s": round(wall, 1),
            "chromium_rss_peak_to_complete_mib": round(rss.peak(completed_at) / 2**20),
            "chromium_rss_at_complete_mib": round(rss.now() / 2**20),
            "rss_profile_mib": profile(rss.samples, completed_at),
            "rows_in_document": page.evaluate("document.querySelectorAll('#ts-table tr').length"),
            "devtools_round_trip_ms": {
                "median": round(statistics.median(round_trips or [0])),
                "p90": round(sorted(round_trips or [0])[int(0.9 * len(round_trips or [0]))]),
                "max": round(max(round_trips, default=0)),
                "samples": len(round_trips),
            },
        }
        if page.locator("#ts-goto").count():
            far = page.evaluate(JUMP, args.rows - 1)
            back = page.evaluate(JUMP, 1)
            # Row ROWS-1 as the stream makes it: parsed from the page's stream when its last
            # rows came as elements, else the service's own renderer (tests/test_fragments.py
            # proves a fragment is byte for byte what the stream sends).
            streamed_far = probe["tail"][0] if len(probe["tail"]) == 2 else None
            if streamed_far is None:
                markup = str(rows_html([synthetic_row(args.rows - 2)]))
                streamed_far = page.evaluate(PARSE_ROW, markup)
            report["jump"] = {
                "to_row": args.rows - 1,
                "to_row_ms": far["ms"] and round(far["ms"]),
                "to_row_identical": far["html"] is not None and far["html"] == streamed_far,
                "back_to_row_1_ms": back["ms"] and round(back["ms"]),
                "row_1_identical": back["html"] is not None and back["html"] == probe["first"],
            }
        report["chromium_rss_peak_overall_mib"] = round(rss.peak() / 2**20)
        browser.close()
    return report


def profile(samples: list[tuple[float, int]], until: float) -> list[list[float]]:
    """About ten (seconds, MiB) points from the start to ``until``."""
    kept = [(t, b) for t, b in samples if t <= until]
    step = max(1, len(kept) // 10)
    return [[round(t, 1), round(b / 2**20)] for t, b in kept[::step]]


def verdict(report: dict, args: argparse.Namespace) -> list[str]:
    failures = []
    if report["chromium_rss_peak_to_complete_mib"] * 2**20 > RSS_LIMIT:
        failures.append(f"Chromium RSS peaked at {report['chromium_rss_peak_to_complete_mib']} MiB")
    if report["final_status"] != ["complete", f"{args.rows:,} rows, complete"]:
        failures.append(f"status {report['final_status']}")
    if report["devtools_round_trip_ms"]["median"] > DEVTOOLS_MEDIAN_MS:
        failures.append(f"DevTools median {report['devtools_round_trip_ms']['median']} ms")
    jump = report.get("jump")
    if jump is None:
        failures.append("no go-to-row control (the page kept every row)")
    else:
        for name in ("to_row_ms", "back_to_row_1_ms"):
            if jump[name] is None or jump[name] > JUMP_MS:
                failures.append(f"{name} {jump[name]}")
        for name in ("to_row_identical", "row_1_identical"):
            if not jump[name]:
                failures.append(f"{name} false")
    return failures


if __name__ == "__main__":
    main()
