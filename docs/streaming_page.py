"""Open a big table in Debian's Chromium while it streams: screenshot it, print what it cost.

    .venv-dev/bin/python docs/streaming_page.py [--rows N] [--screenshot docs/streaming-page.png]

Starts ``tablestream serve`` as its own process (so the server does not share a GIL with the
browser driver), opens ``/tables/synthetic?limit=ROWS`` in headless Chromium with the page's
real Content-Security-Policy, takes the screenshot once the live counter has passed 2,000 rows
(the stream still open), and prints: first contentful paint, the first frame with a row, the
end of parsing, the status the page ended in, and how responsive the page stayed (the longest
stall of a 100 ms timer in the page, long tasks, the round trip of a DevTools call).
Measuring hooks are added with DevTools (``add_init_script``), which the CSP does not govern.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tablestream.testing import ServerProcess  # noqa: E402

PROBE = """
window.__probe = {fcp: null, firstRow: null, dcl: null, longTasks: [], lagMax: 0};
new PerformanceObserver(list => {
  for (const e of list.getEntries()) window.__probe.longTasks.push(e.duration);
}).observe({type: "longtask", buffered: true});
new PerformanceObserver(list => {
  for (const e of list.getEntries())
    if (e.name === "first-contentful-paint") window.__probe.fcp = e.startTime;
}).observe({type: "paint", buffered: true});
(function frame() {
  if (document.querySelector("#ts-table tbody tr")) window.__probe.firstRow = performance.now();
  else requestAnimationFrame(frame);
})();
let expected = performance.now() + 100;
const lag = setInterval(() => {
  const now = performance.now();
  window.__probe.lagMax = Math.max(window.__probe.lagMax, now - expected);
  expected = now + 100;
}, 100);
document.addEventListener("DOMContentLoaded", () => {
  window.__probe.dcl = performance.now();
  clearInterval(lag);
});
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "streaming-page.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    env = {"TABLESTREAM_SYNTHETIC_ROWS": str(max(args.rows, 1)), "TABLESTREAM_DB": ""}
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(env, Path(tmp) / "server.log")
        try:
            report = measure(f"{server.url}/tables/synthetic?limit={args.rows}", args)
        finally:
            server.stop()
    print(json.dumps(report, indent=2))


def measure(url: str, args: argparse.Namespace) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
        )
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.add_init_script(PROBE)
        started = time.monotonic()
        page.goto(url, wait_until="commit")
        shot = None
        round_trips = []
        while page.evaluate("document.readyState") == "loading":
            t = time.monotonic()
            page.evaluate("0")  # how long the page's main thread keeps a trivial call waiting
            round_trips.append((time.monotonic() - t) * 1000)
            # The page's own counter (counting rows here would measure the count, not the page).
            counter = page.evaluate("document.getElementById('ts-status')?.textContent || ''")
            digits = "".join(c for c in counter.split(" rows")[0] if c.isdigit())
            rows = int(digits) if digits else 0
            if shot is None and rows > 2000:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.screenshot)
                shot = {"rows_on_page": rows, "status": page.inner_text("#ts-status")}
            time.sleep(0.5)
        wall = time.monotonic() - started
        probe = page.evaluate("window.__probe")
        status = page.locator("#ts-status")
        long_tasks = probe["longTasks"]
        report = {
            "rows": args.rows,
            "first_contentful_paint_ms": round(probe["fcp"] or -1),
            "first_row_frame_ms": round(probe["firstRow"] or -1),
            "parsed_ms": round(probe["dcl"] or -1),
            "wall_s": round(wall, 1),
            "final_status": [status.get_attribute("data-state"), status.inner_text()],
            "screenshot": {"path": str(args.screenshot), **(shot or {})},
            "timer_lag_max_ms": round(probe["lagMax"]),
            "long_tasks": len(long_tasks),
            "long_task_max_ms": round(max(long_tasks, default=0)),
            "long_task_total_ms": round(sum(long_tasks)),
            "devtools_round_trip_ms": {
                "median": round(statistics.median(round_trips or [0])),
                "max": round(max(round_trips, default=0)),
            },
        }
        browser.close()
    return report


if __name__ == "__main__":
    main()
