"""The load scenarios: the smoke run passes on the real server, fails on a leaking one, and
runs distributed; plus the verdict's arithmetic and the page counting on their own.

locust is always a subprocess: it monkeypatches the whole process with gevent, which must not
happen inside pytest (and would trip ``filterwarnings = error``).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.pagecount import PageCount
from loadtests.verdict import MIB, Sample, Thresholds, judge
from tablestream.testing import ServerProcess, free_port

from .servers import ROOT

LOCUSTFILE = "loadtests/locustfile.py"


def _samples(levels: list[float], per_step: int = 20, rise_per_s: float = 0.0) -> list[Sample]:
    """One sample a second; step i sits at ``levels[i]`` MiB, rising ``rise_per_s`` MiB/s."""
    rows = [10**i * 1000 for i in range(len(levels))]
    out = []
    for step, level in enumerate(levels):
        for i in range(per_step):
            t = step * per_step + i
            noise = 0.3 if i % 3 == 0 else 0.0
            out.append(Sample(t, rows[step], (level + noise + rise_per_s * t) * MIB))
    return out


def test_flat_memory_passes_the_verdict():
    verdict = judge(_samples([40, 40.5, 41, 40.8]))
    assert verdict.passed, verdict.lines()
    assert abs(verdict.slope_mib_per_min or 0) < 1
    assert verdict.growth_mib is not None and verdict.growth_mib < 1


def test_memory_growing_with_rows_fails_on_growth_per_step():
    verdict = judge(_samples([40, 42, 60, 200]))
    assert not verdict.passed
    assert verdict.growth_between == (100_000, 1_000_000)
    assert verdict.growth_mib == pytest.approx(140, abs=1)
    assert any("grew 140" in reason for reason in verdict.reasons)


def test_memory_rising_with_time_fails_on_slope_even_with_small_steps():
    verdict = judge(_samples([40, 40, 40, 40], rise_per_s=0.25))  # 15 MiB/min, 5 MiB per step
    assert not verdict.passed
    assert verdict.slope_mib_per_min == pytest.approx(15, abs=0.5)
    assert verdict.growth_mib is not None and verdict.growth_mib < 16


def test_short_spikes_are_not_a_slope():
    samples = _samples([40, 40, 40, 40], per_step=40)
    spiky = [
        Sample(s.seconds, s.rows, s.rss_bytes + (12 * MIB if i % 7 == 0 else 0))
        for i, s in enumerate(samples)
    ]
    spiky[-1] = Sample(spiky[-1].seconds, spiky[-1].rows, 52 * MIB)  # a spike at the very end
    verdict = judge(spiky)
    assert verdict.passed, verdict.lines()
    assert abs(verdict.slope_mib_per_min or 0) < 1


def test_a_level_change_between_steps_is_not_a_slope():
    verdict = judge(_samples([40, 45, 50, 55]), Thresholds(max_step_growth_mib=6))
    assert verdict.passed, verdict.lines()
    assert abs(verdict.slope_mib_per_min or 0) < 1


def test_one_step_of_samples_cannot_pass():
    verdict = judge(_samples([40]))
    assert not verdict.passed
    assert "at least 2 are needed" in verdict.reasons[0]


def test_page_count_counts_a_row_split_between_chunks_once():
    page = PageCount()
    body = b"<thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr>\n<tr><td>2</td></tr>\n"
    for i in range(0, len(body), 5):
        page.feed(body[i : i + 5])
    page.feed(b'</tbody><footer class="ts-footer" id="ts-complete" data-rows-sent="2">')
    assert (page.rows, page.rows_sent(), page.problem(2)) == (2, 2, None)


def test_page_count_without_footer_or_with_other_count_is_a_problem():
    cut = PageCount()
    cut.feed(b"<tr><td>1</td></tr>\n")
    assert "no success footer" in (cut.problem(1) or "")
    short = PageCount()
    short.feed(b'<tr><td>1</td></tr><footer class="ts-footer" id="ts-complete" data-rows-sent="1">')
    assert "footer says 1 rows, asked for 5" in (short.problem(5) or "")
    assert short.problem(5, exact=False) is None  # a table shorter than the limit
    assert "asked for 0" in (short.problem(0, exact=False) or "")


def _run(args: list[str], timeout: float) -> tuple[int, Path]:
    """``python -m loadtests.run ARGS``; its exit code and report folder (bounded by timeout)."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    reports = [
        line.split()[2] for line in done.stdout.splitlines() if line.startswith("loadtest: report ")
    ]
    assert reports, done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode, Path(reports[-1])


def _stats(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "locust_stats.csv").open() as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_smoke_run_passes_its_verdict_on_the_real_server(tmp_path):
    db = tmp_path / "loadtest.sqlite3"  # built by the runner, as on a fresh clone
    code, folder = _run(["--smoke", "--runs", str(tmp_path), "--db", str(db)], timeout=150)
    verdict = (folder / "verdict.txt").read_text()
    assert code == 0, verdict
    assert verdict.startswith("verdict: PASS")
    stats = _stats(folder)
    assert int(stats["full 100,000 rows"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    assert (folder / "memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((folder / "memory.csv").read_text().splitlines()) > 30


@pytest.mark.slow
def test_verdict_fails_against_a_deliberately_leaking_server(tmp_path):
    leaky = ServerProcess(
        {"TABLESTREAM_DB": "", "TABLESTREAM_SYNTHETIC_ROWS": "1000000"},
        tmp_path / "leaky.log",
        module="tests.leakyserver",
        cwd=ROOT,
    )
    try:
        code, folder = _run(
            ["--url", leaky.url, "--runs", str(tmp_path), "--row-steps", "1000,10000",
             "--step-seconds", "12", "--step-users", "4", "--", "--settle-seconds", "4"],
            timeout=90,
        )  # fmt: skip
    finally:
        leaky.stop()
    verdict = (folder / "verdict.txt").read_text()
    assert code == 3, verdict
    assert verdict.startswith("verdict: FAIL")
    assert "FAIL: memory grew" in verdict or "FAIL: memory rose" in verdict


@pytest.mark.slow
def test_master_and_one_worker_on_localhost_make_requests(process_server, settings_for, tmp_path):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    server = process_server(**env)
    port = free_port()
    common = [sys.executable, "-m", "locust", "-f", LOCUSTFILE]
    master = subprocess.Popen(
        [*common, "--master", "--headless", "--expect-workers", "1", "--master-bind-host",
         "127.0.0.1", "--master-bind-port", str(port), "--host", server.url, "--only-summary",
         "--row-steps", "1000,5000", "--step-seconds", "4", "--step-users", "3",
         "--settle-seconds", "1", "--max-step-growth-mib", "1000",
         "--max-slope-mib-per-min", "100000", "--csv", str(tmp_path / "locust"),
         "--report-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        output, _ = master.communicate(timeout=60)
        worker.wait(timeout=20)
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0, output[-3000:]
    stats = _stats(tmp_path)
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    # the worker got the second row step from the master's shape
    assert int(stats["full 5,000 rows"]["Request Count"]) > 0
