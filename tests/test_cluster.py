"""The short form of ``make rolling``: one round of replacing three instances under light load.

The cluster is the real thing (loadtests/cluster.py): three hosts as network namespaces (or
127.0.0.x without root, said in the report), each instance from the wheel, nginx with the
shipped cluster upstream, the machine's PostgreSQL and Redis (the per-client cap at 2, shared), a
real Prometheus with ops/alerts.yml, and locust with one master and two workers. Four page
readers (loadtests/pageresume.py) read 500,000-row pages at 4 MB/s while the instances are
replaced: a page cut by a drain must resume to its footer with every id once, and at least
one must be cut. The client cap and ``/streams/<id>`` must hold across the instances before and
after the round, and no lease may be left in Redis. The load is small and the streams short;
the p99 ratio (too few samples to mean anything here), the 1 % agreement of Prometheus' row
count with the clients' (3 % here) and the 2-minute wait for TablestreamDown to fire are left to
``make rolling``: here the alert must go pending for the killed instance and no other.
"""

from __future__ import annotations

import pytest

from loadtests.rolling import Plan, run
from loadtests.rolling_verdict import table, verdict

pytestmark = [pytest.mark.slow, pytest.mark.system, pytest.mark.postgres]

SHORT = Plan(
    rounds=1,
    users=6,
    warmup=3,
    baseline=4,
    grace=1.5,
    long_rows="300000",
    download_rows=300_000,
    demo_rows=5_000,
    down_state="pending",
    venvs=1,
    pages=4,  # least connections spreads them: a drain nearly always finds one to cut
    # ~17 s at 4 MB/s: nginx's receive buffer from an instance grows to tcp_rmem's maximum
    # (32 MiB here), so an instance sends a 28 MB page in 2-11 s; a 69 MB one outlives the grace.
    page_rows=500_000,
    page_rate=4_000_000,
)


def test_a_rolling_deploy_loses_no_request_and_cuts_no_stream_silently(tmp_path):
    figures = run(tmp_path / "cluster", SHORT, log=lambda line: None)
    lines = verdict(figures)
    report = table(figures, lines)
    print(report)  # the figures, shown with pytest -rP
    judged = {line.target.split(" (")[0]: line for line in lines}
    skipped = {"small p99 during deploy / without"}  # too few samples in a short run
    for target, line in judged.items():
        if target.startswith("downloads byte-identical"):
            # Whether a download was on an instance while it drained is chance in one round.
            assert all(d["sha_ok"] for d in figures.downloads) and figures.downloads, report
        elif target.startswith("Prometheus sum(increase(rows))"):
            # A short run's total is small beside what a replaced instance sends after its last
            # scrape and beside increase()'s extrapolation: 0.78 % and 0.88 % seen here, the
            # 1 % target is make rolling's. Double counting an instance would be >= 30 %.
            off = abs(figures.prometheus_rows - figures.client_rows)
            assert off <= 0.03 * figures.client_rows, report
        elif target not in skipped:
            assert line.ok, report
    assert {r["kind"] for r in figures.records} >= {"small", "page100k", "csv", "long"}, report
    assert len(figures.replacements) == 3, report
